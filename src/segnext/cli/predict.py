"""`segnext predict --checkpoint C INPUT...`: label maps (palettised PNG), overlays, probabilities.

Inputs are files, folders (searched recursively for images) and glob patterns. Every image gets
OUT/<name>.png, a palettised PNG whose pixel values are the class ids (shown in the dataset's
colours); with --overlay also OUT/<name>_overlay.jpg, and with --probs OUT/<name>_probs.npy
(float16, num_classes x H x W). Files from a folder keep their sub-folder below OUT.

An image that cannot be read is reported with its name and skipped; the others are still
processed, and the exit status is 1 at the end.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import List, Tuple

from ..constants import IMAGE_SUFFIXES
from .arguments import add_nmf_seed, with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="segment images: label maps, colour overlays, class probabilities",
        description="Segment images with a SegNeXt checkpoint (or an exported ONNX model). Test-time settings "
                    "come from the checkpoint (its evaluation settings, else its dataset's official ones) "
                    "unless given here.",
        **with_examples("segnext predict -c segnext-t-ade/ photo.jpg",
                        "segnext predict -c runs/demo/final_model photos/ --out predictions --overlay",
                        "segnext predict --onnx segnext_t.onnx 'photos/**/*.png' --ms"))
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", "-c", help="any checkpoint create_model reads (official .pth, segnext dir)")
    source.add_argument("--onnx", help="an ONNX model written by `segnext export` (runs with onnxruntime)")
    parser.add_argument("--out", "-o", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--overlay", action="store_true", help="also write the colours blended on the image")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay colour weight (default 0.5)")
    parser.add_argument("--probs", action="store_true", help="also write per-class probabilities (.npy, float16)")
    settings = parser.add_argument_group("test-time settings (default: from the checkpoint)")
    settings.add_argument("--mode", choices=("whole", "slide"), help="whole-image or sliding-window inference")
    settings.add_argument("--img-scale", type=int, nargs=2, metavar=("LONG", "SHORT"),
                          help="keep-ratio resize bound, e.g. 2048 512")
    settings.add_argument("--keep-size", action="store_true", help="no resize: run at the image's own size")
    settings.add_argument("--size-divisor", type=int, help="round the resized size up to a multiple of this")
    settings.add_argument("--crop-size", type=int, nargs=2, metavar=("H", "W"), help="slide window size")
    settings.add_argument("--stride", type=int, nargs=2, metavar=("H", "W"), help="slide window stride")
    settings.add_argument("--ms", action="store_true", help="multi-scale (0.5-1.75) + flip test, as the paper")
    settings.add_argument("--scales", type=float, nargs="+", help="scale ratios, e.g. 0.75 1.0 1.25")
    settings.add_argument("--flip", action="store_true", help="average with the horizontally flipped image")
    run_group = parser.add_argument_group("execution")
    run_group.add_argument("--device", default="auto",
                           help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    run_group.add_argument("--threads", type=int, help="torch / onnxruntime CPU threads")
    run_group.add_argument("--no-optimize", action="store_true", help="run the plain model (no optimize_for_inference)")
    add_nmf_seed(run_group, "of the model")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def collect_inputs(inputs: List[str]) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """[(image path, output stem relative to --out)] and the inputs that matched nothing."""
    found: List[Tuple[Path, Path]] = []
    missing: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                missing.append(f"{item} (a folder with no images)")
            found += [(p, p.relative_to(path).with_suffix("")) for p in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        elif glob.has_magic(item):
            files = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not files:
                missing.append(f"{item} (the pattern matched no file)")
            found += [(p, Path(p.stem)) for p in files]
        else:
            missing.append(f"{item} (no such file or folder)")
    return found, missing


def _test_config(args, base):
    from ..inference import override_test_config

    img_scale = None if args.keep_size else (tuple(args.img_scale) if args.img_scale else Ellipsis)
    return override_test_config(
        base, mode=args.mode, img_scale=img_scale,
        size_divisor=args.size_divisor if args.size_divisor is not None else Ellipsis,
        crop_size=args.crop_size, stride=args.stride, scales=args.scales, flip=True if args.flip else None,
        multi_scale=args.ms)


def run(args) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from ..data import overlay, write_label
    from ..inference import Segmenter, to_rgb_array
    from ..utils import require, resolve_device

    if args.onnx:
        require("onnxruntime", "onnx", "--onnx")
    device = resolve_device(args.device)  # before any work: an unavailable device is a one-line error
    if args.threads:
        torch.set_num_threads(args.threads)
    images, missing = collect_inputs(args.inputs)
    for item in missing:
        print(f"segnext predict: error: {item}", file=sys.stderr)
    if not images:
        print("segnext predict: error: no images to segment", file=sys.stderr)
        return 1
    outputs = {}
    for path, stem in images:
        if stem in outputs and outputs[stem] != path:
            raise ValueError(f"{outputs[stem]} and {path} would both be written to {Path(args.out) / stem}.png; "
                             f"pass them in separate runs with different --out folders")
        outputs[stem] = path

    if args.onnx:
        segmenter = Segmenter.from_onnx(args.onnx, threads=args.threads)
    else:
        segmenter = Segmenter.from_checkpoint(args.checkpoint, device=device, optimize=not args.no_optimize,
                                              nmf_seed=args.nmf_seed)
    segmenter.test_config = _test_config(args, segmenter.test_config)
    out_dir = Path(args.out)
    palette = segmenter.palette
    c = segmenter.test_config
    print(f"{len(images)} image(s) -> {out_dir}/  ({segmenter.num_classes} classes, {c.mode}, img_scale={c.img_scale}"
          f"{', multi-scale' if len(c.scales) > 1 else ''}{', flip' if c.flip else ''})", file=sys.stderr)

    failures = []
    progress = tqdm(images, unit="img", disable=args.no_progress or len(images) < 2, file=sys.stderr)
    for path, stem in progress:
        progress.set_postfix_str(path.name[-40:], refresh=False)
        try:
            rgb = to_rgb_array(path)
            if args.probs:
                labels, probabilities = segmenter.predict_with_proba(rgb)
            else:
                labels = segmenter.predict(rgb)
            target = out_dir / stem
            write_label(target.with_suffix(".png"), labels, palette)
            if args.overlay:
                from PIL import Image

                Image.fromarray(overlay(rgb, labels, palette, args.alpha, ignore_index=None)).save(
                    target.parent / f"{target.name}_overlay.jpg", quality=90)
            if args.probs:
                np.save(target.parent / f"{target.name}_probs.npy", probabilities.astype(np.float16))
        except (OSError, ValueError, RuntimeError) as error:  # DataError is a ValueError
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if str(path) not in message:
                message = f"{path}: {message}"
            failures.append(message)
            tqdm.write(f"segnext predict: error: {message}", file=sys.stderr)
    done = len(images) - len(failures)
    print(f"wrote {done} prediction(s) to {out_dir}/", file=sys.stderr)
    if failures or missing:
        print(f"segnext predict: {len(failures) + len(missing)} input(s) failed", file=sys.stderr)
        return 1
    return 0
