"""`segnext convert SRC DST`: an official checkpoint -> the project's format (a directory)."""

from __future__ import annotations

from .arguments import with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert an official MMSegmentation checkpoint into the project's format",
        description="Read an official SegNeXt checkpoint (MMSegmentation 0.x or 1.x, fp32 or fp16) and write "
                    "DST/config.json + DST/model.safetensors, loadable with create_model(checkpoint=DST).",
        **with_examples("segnext convert segnext_tiny_512x512_ade_160k.pth segnext-t-ade/"))
    parser.add_argument("src", help="official .pth file (or a segnext directory)")
    parser.add_argument("dst", help="output directory")
    parser.add_argument("--name", help="variant, e.g. segnext_t (default: read from the weights)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..models import create_model, read_checkpoint, save_model

    source = read_checkpoint(args.src)
    model = create_model(args.name, checkpoint=args.src)
    save_model(model, args.dst)
    c = model.config
    print(f"converted {args.src} -> {args.dst}")
    print(f"  variant      {c.variant} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    print(f"  classes      {c.num_classes}" + (f" ({', '.join(c.class_names[:5])}, ...)" if c.class_names else
                                                 " (no class names in the source)"))
    print(f"  palette      {'yes' if c.palette else 'no'}")
    print(f"  tensors      {len(source.state_dict)} ({source.kind} format)")
    for note in source.notes:
        print(f"  note         {note}")
    return 0
