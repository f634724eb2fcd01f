"""`segnext info CHECKPOINT`: what a checkpoint holds, read without writing anything: variant, classes,
test settings, what it was trained on and how it scored (`segnext convert` prints the same lines)."""

from __future__ import annotations

import json
from typing import List

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from .arguments import with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="what a checkpoint holds: variant, classes, test settings, training data, scores",
        description="Read CHECKPOINT (a model folder, an official MMSegmentation or JSeg file, a training "
                    "checkpoint, hf://owner/name, the name of published weights, or an ONNX file of segnext "
                    "export) and say what it holds: its variant and architecture, classes, input channels, test "
                    "settings, NMF seed, logit temperature, and what a model folder records of its training data "
                    "and scores. Nothing is written.",
        **with_examples("segnext info camvid", "segnext info work_dirs/mine/final_model --json"))
    parser.add_argument("checkpoint", help="any checkpoint create_model reads")
    parser.add_argument("--json", action="store_true", help="print the same as one JSON object")
    parser.set_defaults(func=run)


def run(args) -> int:
    if str(args.checkpoint).lower().endswith(".onnx"):
        return _onnx_info(args)
    from ..inference import TestConfig, test_config_for
    from ..models import create_model, model_record, read_checkpoint
    from ..models.card import architecture_changes
    from ..models.hub import resolve_checkpoint

    model = create_model(checkpoint=args.checkpoint)
    source = read_checkpoint(resolve_checkpoint(model_path(args.checkpoint)))
    settings_saved = bool(model.config.test_settings)
    settings = TestConfig.from_dict(model.config.test_settings) if settings_saved else test_config_for(model)
    record = model_record(args.checkpoint)
    c = model.config
    facts = {"checkpoint": str(args.checkpoint), "format": source.kind, "tensors": len(source.state_dict),
             "variant": c.variant, "parameters": sum(p.numel() for p in model.parameters()),
             "architecture_changes": architecture_changes(c), "num_classes": c.num_classes,
             "class_names": c.class_names, "palette": bool(c.palette), "in_channels": c.in_channels,
             "test_settings": settings.to_dict(), "test_settings_saved": settings_saved, "nmf_seed": model.nmf_seed,
             "logit_temperature": c.logit_temperature, **record, "notes": list(source.notes)}
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
        return 0
    print(args.checkpoint)
    for line in summary_lines(model, settings, settings_saved, record, source):
        print(line)
    return 0


def _onnx_info(args) -> int:
    """What `segnext export` wrote into an ONNX file's metadata, and its input."""
    from ..inference import OnnxModel, TestConfig

    model = OnnxModel(args.checkpoint)
    meta = model.metadata
    settings = TestConfig.from_dict(json.loads(meta["test_config"])) if meta.get("test_config") else None
    inputs = model.session.get_inputs()[0]
    shape = [d if isinstance(d, int) else str(d) for d in inputs.shape]  # names of the dynamic axes
    facts = {"checkpoint": str(args.checkpoint), "format": "onnx", "variant": meta.get("variant"),
             "num_classes": model.num_classes, "class_names": model.class_names, "palette": bool(model.palette),
             "in_channels": model.in_channels, "input_shape": shape,
             "input": meta.get("input"), "test_settings": settings.to_dict() if settings else None,
             "nmf_seed": meta.get("nmf_seed"), "training_data": json.loads(meta["training_data"])
             if meta.get("training_data") else None}
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    names = model.class_names or []
    print(args.checkpoint)
    print(f"  variant      {facts['variant']} (ONNX, input {inputs.type} {' x '.join(map(str, shape))})")
    print(f"  classes      {model.num_classes}" + (f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
                                                   if names else " (no class names)"))
    print(f"  input        {facts['input']}")
    if settings:
        print(f"  test         {settings.describe()} (saved with the model)")
    print(f"  nmf seed     {facts['nmf_seed']} (the bases are constants of the graph)")
    trained = facts["training_data"]
    if trained:
        print(f"  trained on   {trained.get('dataset', '?')} {trained.get('split', '?')}")
    return 0


def model_path(checkpoint: str) -> str:
    """The file or folder of `checkpoint`, published names resolved (weights in the package or the cache)."""
    import os

    from ..models.download import fetch
    from ..models.pretrained import published_model

    if os.path.exists(str(checkpoint)) or str(checkpoint).startswith("hf://"):
        return str(checkpoint)
    try:
        published = published_model(str(checkpoint))
    except ValueError:  # not a published name either: the reader names what is missing
        return str(checkpoint)
    return str(fetch(published)) if published is not None else str(checkpoint)


def _values(values) -> str:
    return "[" + ", ".join(f"{value:g}" for value in values) + "]"


def summary_lines(model, settings, settings_saved: bool, record: dict, source) -> List[str]:
    """The lines `segnext info` and `segnext convert` print about a model and the checkpoint it came from."""
    from ..models.card import architecture_changes
    from ..utils import count

    c = model.config
    lines = [f"  variant      {c.variant} ({sum(p.numel() for p in model.parameters()):,} parameters)"]
    changes = architecture_changes(c)
    if changes:
        lines.append(f"  architecture not the published one: {', '.join(changes)}")
    lines.append(f"  classes      {c.num_classes}" + (f" ({', '.join(c.class_names[:5])}"
                                                     f"{', ...' if len(c.class_names) > 5 else ''})"
                                                     if c.class_names else " (no class names in the source)"))
    lines.append(f"  palette      {'yes' if c.palette else 'no'}")
    if c.in_channels != 3:
        lines.append(f"  input        {c.in_channels} channels (not RGB)")
    elif settings.bands:
        lines.append("  input        3 channels read as bands in their own units (not 8-bit RGB)")
    if tuple(settings.mean) != IMAGENET_MEAN or tuple(settings.std) != IMAGENET_STD:  # the units its images are in
        lines.append(f"  normalised   (pixel - mean) / std, mean {_values(settings.mean)}, std {_values(settings.std)}")
    lines.append(f"  test         {settings.describe()} "
                 f"({'saved with the checkpoint' if settings_saved else 'the official settings of its dataset'})")
    lines.append(f"  nmf seed     {model.nmf_seed}")
    if c.logit_temperature != 1:
        lines.append(f"  temperature  {c.logit_temperature:.3f} (the logits are divided by it: segnext calibrate)")
    trained = record.get("training_data")
    if trained:
        groups = trained.get("groups") or {}
        frames = f" ({count(sum(groups.values()), 'image')} in {count(len(groups), 'group')})" if groups else ""
        lines.append(f"  trained on   {trained.get('dataset', '?')} {trained.get('split', '?')}{frames}")
    metrics = record.get("metrics")
    if metrics and "mIoU" in metrics:
        scores = ", ".join(f"{name} {metrics[name]:.2f}" for name in ("mIoU", "aAcc", "mAcc")
                           if isinstance(metrics.get(name), (int, float)))
        where = " ".join(str(metrics[key]) for key in ("dataset", "split") if metrics.get(key))
        images = f" ({metrics['num_images']} images)" if metrics.get("num_images") else ""
        lines.append(f"  scores       {scores}" + (f" on {where}{images}" if where else ""))
    lines.append(f"  tensors      {len(source.state_dict)} ({source.kind} format)")
    lines += [f"  note         {note}" for note in source.notes]
    return lines
