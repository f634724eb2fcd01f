"""`segnext export --checkpoint C`: an ONNX file for onnxruntime / TensorRT."""

from __future__ import annotations

from pathlib import Path

from .arguments import add_nmf_seed, with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX (fixed NMF bases, dynamic input size)",
        description="Write the model as ONNX: input `images` (B, 3, H, W) normalised RGB, output `logits` "
                    "(B, num_classes, H, W). The NMF bases of the fixed seed are stored as constants; class "
                    "names, palette and test settings go into the file's metadata.",
        **with_examples("segnext export -c segnext-t-ade/ -o segnext_t.onnx --verify",
                        "segnext export -c final_model -o m.onnx --static --shape 512 512"))
    parser.add_argument("--checkpoint", "-c", required=True, help="any checkpoint create_model reads")
    parser.add_argument("--output", "-o", help="output file (default: <checkpoint name>.onnx)")
    parser.add_argument("--shape", type=int, nargs=2, default=(512, 512), metavar=("H", "W"),
                        help="example input size traced (default 512 512)")
    parser.add_argument("--static", action="store_true", help="fix the input size to --shape (default: dynamic)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    add_nmf_seed(parser, "stored in the file")
    parser.add_argument("--verify", action="store_true", help="compare onnxruntime's output with PyTorch's")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..utils import require

    require("onnx", "onnx", "ONNX export")  # before any work
    if args.verify:
        require("onnxruntime", "onnx", "--verify")
    import torch

    from ..inference import export_onnx
    from ..models import create_model

    model = create_model(checkpoint=args.checkpoint, nmf_seed=args.nmf_seed).eval()
    output = Path(args.output) if args.output else Path(Path(args.checkpoint).name).with_suffix(".onnx")
    height, width = args.shape
    path = export_onnx(model, output, height, width, dynamic=not args.static, opset=args.opset)
    size_mb = path.stat().st_size / 2**20
    print(f"wrote {path} ({size_mb:.1f} MB, opset {args.opset}, "
          f"{'dynamic' if not args.static else f'{height}x{width}'} input, {model.num_classes} classes)")
    if args.verify:
        from ..inference import OnnxModel

        images = torch.randn(1, 3, height, width)
        with torch.no_grad():
            expected = model(images)
        got = OnnxModel(path)(images)
        error = (got - expected).abs().max().item()
        print(f"onnxruntime vs PyTorch: max abs difference {error:.2e} on a {height}x{width} input")
        if error > 1e-3:
            print("segnext export: warning: the difference is larger than expected")
            return 1
    return 0
