"""`segnext export --checkpoint C`: an ONNX file for onnxruntime / TensorRT; `--int8`: quantized for CPUs."""

from __future__ import annotations

from pathlib import Path

from .arguments import add_nmf_seed, positive_int, with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX (fixed NMF bases, dynamic input size)",
        description="Write the model as ONNX: input `images` (B, 3, H, W) normalised RGB, output `logits` "
                    "(B, num_classes, H, W). The NMF bases of the fixed seed are stored as constants; class "
                    "names, palette and test settings go into the file's metadata.",
        **with_examples("segnext export -c segnext-t-ade/ -o segnext_t.onnx --verify",
                        "segnext export -c final_model -o m.onnx --static --image-size 360 480",
                        "segnext export -c final_model --int8 --calibration data/camvid/images/train -o m.int8.onnx"))
    parser.add_argument("--checkpoint", "-c", required=True, help="any checkpoint create_model reads")
    parser.add_argument("--output", "--out", "-o", help="output file (default: <checkpoint name>.onnx)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--shape", type=positive_int, nargs=2, metavar=("H", "W"),
                      help="the model's input size traced (default 512 512)")
    size.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"),
                      help="the size of the images it will segment: the input traced is their size after the "
                           "model's test resize (with --static, the only size it takes)")
    parser.add_argument("--static", action="store_true",
                        help="fix the input size to --shape or --image-size's (default: dynamic)")
    parser.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default 17; 11 or newer)")
    add_nmf_seed(parser, "stored in the file")
    parser.add_argument("--verify", action="store_true", help="compare onnxruntime's output with PyTorch's")
    int8 = parser.add_argument_group("int8 (post-training static quantization with onnxruntime, for CPUs)")
    int8.add_argument("--int8", action="store_true", help="quantize the convolutions to int8 (needs --calibration)")
    int8.add_argument("--calibration", nargs="+", metavar="INPUT",
                      help="images like those the model will see (files, folders, globs), for the activation ranges")
    int8.add_argument("--calibration-images", type=positive_int, default=32, metavar="N",
                      help="use N of them, evenly spread (default 32)")
    int8.add_argument("--calibration-method", choices=("minmax", "percentile", "entropy"), default="minmax",
                      help="how activation ranges are set (default minmax)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..utils import check_can_write_file, require

    require("onnx", "onnx", "ONNX export")  # before any work
    if args.verify or args.int8:
        require("onnxruntime", "onnx", "--verify" if args.verify else "--int8")
    suffix = ".int8.onnx" if args.int8 else ".onnx"
    output = Path(args.output) if args.output else Path(Path(args.checkpoint).name + suffix)
    check_can_write_file(output, replaces=".onnx")  # never over model.safetensors or a checkpoint
    calibration = _calibration_images(args) if args.int8 else []
    import torch

    from ..inference import export_onnx
    from ..models import create_model, recorded_training_data

    model = create_model(checkpoint=args.checkpoint, nmf_seed=args.nmf_seed).eval()
    if args.int8:  # files of bands for a model that reads bands, image files for an RGB one
        from ..inference import test_config_for
        from .predict import images_for_input

        calibration = [path for path, _ in images_for_input(test_config_for(model),
                                                            [(path, path) for path in calibration], [],
                                                            args.checkpoint, command="export")]
    training_data = recorded_training_data(args.checkpoint)
    height, width = _input_size(model, args)
    if args.int8:
        from ..inference.quantize import export_int8

        path = export_int8(model, output, calibration, method=args.calibration_method,
                           training_data=training_data)
        what = f"int8, calibrated on {len(calibration)} image(s) ({args.calibration_method})"
    else:
        path = export_onnx(model, output, height, width, dynamic=not args.static, opset=args.opset,
                           training_data=training_data)
        what = f"opset {args.opset}, {'dynamic' if not args.static else f'{height}x{width}'} input"
    size_mb = path.stat().st_size / 2**20
    print(f"wrote {path} ({size_mb:.1f} MB, {what}, {model.num_classes} classes)")
    if args.verify:
        from ..inference import OnnxModel

        images = torch.randn(1, model.config.in_channels, height, width)
        with torch.no_grad():
            expected = model(images)
        got = OnnxModel(path)(images)
        error = (got - expected).abs().max().item()
        agreement = (got.argmax(1) == expected.argmax(1)).float().mean().item()
        print(f"onnxruntime vs PyTorch: max abs difference {error:.2e}, labels agree on {100 * agreement:.2f}% of "
              f"pixels (a random {height}x{width} input)")
        if error > 1e-3 and not args.int8:
            print("segnext export: warning: the difference is larger than expected")
            return 1
    return 0


def _input_size(model, args):
    """(height, width) of the input traced: --shape, or --image-size after the model's test resize."""
    if args.image_size is None:
        return tuple(args.shape or (512, 512))
    from ..inference.preprocess import model_input_sizes
    from ..inference.settings import test_config_for

    test_config = test_config_for(model)
    sizes = model_input_sizes(tuple(args.image_size), test_config)
    if args.static and len(sizes) > 1:
        listed = ", ".join(f"{h}x{w}" for h, w in sizes)
        raise ValueError(f"--static: this model's test ({test_config.describe()}) gives {args.image_size[0]}x"
                         f"{args.image_size[1]} images the input sizes {listed}; a static export takes one. "
                         f"Leave out --static (dynamic sizes)")
    return sizes[0]


def _calibration_images(args) -> list:
    """--calibration's image files, --calibration-images of them evenly spread."""
    from .predict import collect_inputs, is_video

    if args.static:
        raise ValueError("--int8 writes a model with a dynamic input size; leave out --static")
    if not args.calibration:
        raise ValueError("--int8 needs --calibration: images like those the model will see (a folder, files or "
                         "globs), e.g. --calibration data/camvid/images/train")
    found, missing = collect_inputs(args.calibration)
    files = [path for path, _ in found if not is_video(path)]
    if missing or not files:
        raise ValueError(f"--calibration: {'; '.join(missing) or 'no image files'}")
    count = min(args.calibration_images, len(files))
    return [files[round(i * (len(files) - 1) / max(count - 1, 1))] for i in range(count)]
