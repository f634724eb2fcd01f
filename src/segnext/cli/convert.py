"""`segnext convert SRC DST`: an official checkpoint -> the project's format (a directory)."""

from __future__ import annotations

from .arguments import with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert an official MMSegmentation checkpoint into the project's format",
        description="Read a SegNeXt checkpoint (MMSegmentation 0.x or 1.x, fp32 or fp16; a JSeg .pkl; a segnext "
                    "training checkpoint) and write the model folder DST: config.json (architecture, classes, "
                    "test settings), model.safetensors and a README.md model card, loadable with "
                    "create_model(checkpoint=DST) and every command's --checkpoint.",
        **with_examples("segnext convert segnext_tiny_512x512_ade_160k.pth segnext-t-ade/"))
    parser.add_argument("src", help="checkpoint file (or a segnext model folder)")
    parser.add_argument("dst", help="output directory")
    parser.add_argument("--name", help="variant, e.g. segnext_t (default: read from the weights)")
    parser.add_argument("--half", action="store_true",
                        help="store the weights in float16 (half the size; read back as float32)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..inference import TestConfig, test_config_for
    from ..models import create_model, read_checkpoint, recorded_training_data, save_model
    from ..models.hub import resolve_checkpoint

    source = read_checkpoint(resolve_checkpoint(args.src))
    model = create_model(args.name, checkpoint=args.src)
    settings_saved = bool(model.config.test_settings)
    model.config.test_settings = test_config_for(model).to_dict()  # written out, so that the folder says it
    save_model(model, args.dst, source=f"Converted by `segnext convert` from {Path(args.src).name}.", half=args.half,
               training_data=recorded_training_data(args.src))  # a model folder's record travels with it
    c = model.config
    print(f"converted {args.src} -> {args.dst}")
    print(f"  variant      {c.variant} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    print(f"  classes      {c.num_classes}" + (f" ({', '.join(c.class_names[:5])}, ...)" if c.class_names else
                                                 " (no class names in the source)"))
    print(f"  palette      {'yes' if c.palette else 'no'}")
    print(f"  test         {TestConfig.from_dict(c.test_settings).describe()} "
          f"({'saved with the checkpoint' if settings_saved else 'the official settings of its dataset'})")
    print(f"  tensors      {len(source.state_dict)} ({source.kind} format)")
    for note in source.notes:
        print(f"  note         {note}")
    return 0
