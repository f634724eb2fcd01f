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

    from ..inference import test_config_for
    from ..models import create_model, model_record, read_checkpoint, save_model
    from ..models.hub import resolve_checkpoint
    from .info import model_path, summary_lines

    source = read_checkpoint(resolve_checkpoint(model_path(args.src)))
    model = create_model(args.name, checkpoint=args.src)
    settings_saved = bool(model.config.test_settings)
    settings = test_config_for(model)
    model.config.test_settings = settings.to_dict()  # written out, so that the folder says it
    record = model_record(args.src)  # a model folder's record of its training data travels with it
    save_model(model, args.dst, source=f"Converted by `segnext convert` from {Path(args.src).name}.", half=args.half,
               training_data=record.get("training_data"))
    print(f"converted {args.src} -> {args.dst}")
    for line in summary_lines(model, settings, settings_saved, record, source):
        print(line)
    return 0
