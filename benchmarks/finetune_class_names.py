"""What keeping the classifier rows of shared class names is worth when fine-tuning on other classes.

    python benchmarks/finetune_class_names.py --camvid data/camvid --out benchmarks/results/finetune_class_names.json

A user's own classes, made from CamVid: Road, Car, Sky and Building as they are, the seven other
classes merged into "Other" (a class the CamVid model does not know). The CamVid model that ships
in the package is fine-tuned on the train split with the documented CPU command (256x256 crops,
batch 4), with model.match_class_names true (Road, Car, Sky and Building keep their trained
classifier rows) and false (all five rows start anew), for each --iters, and scored on val (as
`segnext train` does at the end). Prints a table and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from segnext.train import load_config, train

CLASSES = ["Road", "Car", "Sky", "Building", "Other"]
CAMVID_TO_OURS = {3: 0, 8: 1, 0: 2, 1: 3}  # CamVid ids of Road, Car, Sky, Building; every other class -> Other


def make_dataset(camvid: Path, root: Path) -> None:
    table = np.full(256, 255, np.uint8)
    table[:11] = len(CLASSES) - 1
    for camvid_id, ours in CAMVID_TO_OURS.items():
        table[camvid_id] = ours
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for image in sorted((camvid / "images" / split).iterdir()):
            os.symlink(image.resolve(), root / "images" / split / image.name)
            label = np.asarray(Image.open(camvid / "labels" / split / f"{image.stem}.png"))
            Image.fromarray(table[label]).save(root / "labels" / split / f"{image.stem}.png")
    (root / "classes.json").write_text(json.dumps({"classes": CLASSES}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", type=Path, required=True, help="CamVid in the folder layout (segnext data prepare)")
    parser.add_argument("--iters", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "data"
        make_dataset(args.camvid, root)
        for iters in args.iters:
            for match in (True, False):
                config = load_config("folder/segnext_t_folder_512x512_8k", [
                    f"data.root={root}", "model.pretrained=camvid", "data.crop_size=[256,256]",
                    "train.batch_size=4", "train.micro_batch_size=4", f"train.max_iters={iters}",
                    "train.eval_interval=0", f"model.match_class_names={str(match).lower()}"])
                result = train(config, Path(scratch) / f"run_{iters}_{match}", resume=False, progress=False)
                rows.append({"iterations": iters, "match_class_names": match, "mIoU": result.results["mIoU"],
                             "IoU": dict(zip(CLASSES, result.results["IoU"])), "train_seconds": result.seconds})
    print(f"\n{'iterations':>10} {'match_class_names':>17} {'mIoU':>6}  " + "  ".join(f"{c:>8}" for c in CLASSES))
    for row in rows:
        print(f"{row['iterations']:>10} {str(row['match_class_names']):>17} {row['mIoU']:6.2f}  "
              + "  ".join(f"{row['IoU'][c]:8.1f}" for c in CLASSES))
    if args.out:
        args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
