"""`segnext calibrate CONFIG --checkpoint C`: fit the logit temperature that makes C's confidence
say how often it is right (temperature scaling), and write the calibrated model folder."""

from __future__ import annotations

import sys
from pathlib import Path

from .arguments import check_test_channels, positive_int, with_examples


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="fit the temperature that makes a model's confidence say how often it is right",
        description="Fit the logit temperature of CHECKPOINT (temperature scaling, Guo et al., ICML 2017) on "
                    "labelled images of CONFIG's dataset that it did not train on (default: the config's "
                    "data.val_split): the one number that divides the logits so that the likelihood of those "
                    "pixels' labels is highest. Writes the model folder --out with that logit_temperature (the "
                    "weights unchanged): its probabilities, --confidence maps, the server's confidence and "
                    "multi-scale averages are then calibrated; the labels of a single-view test do not change. "
                    "Check it on other images with `segnext eval ... --calibration`.",
        **with_examples("segnext calibrate work_dirs/mine -c work_dirs/mine/final_model --out mine_calibrated",
                        "segnext calibrate camvid/segnext_t_camvid_cpu_60min data.root=data/camvid -c camvid "
                        "--split val --out camvid_calibrated"))
    parser.add_argument("config", help="YAML config file or shipped config name, or a training run's folder (its "
                                       "config.yaml, and its final_model unless --checkpoint says otherwise)")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="config overrides (values are "
                                                                                       "YAML)")
    parser.add_argument("--checkpoint", "-c", help="the model to calibrate (any checkpoint create_model reads)")
    parser.add_argument("--split", help="labelled images it did not train on (default: the config's data.val_split)")
    parser.add_argument("--max-images", type=positive_int, help="fit on the first N images only")
    parser.add_argument("--pixels", type=positive_int, default=None,
                        help="labelled pixels drawn, evenly over the images (default 500,000)")
    parser.add_argument("--out", help="the calibrated model folder (default: the model's name + _calibrated, beside "
                                      "a model folder, else here)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: the config's train.device)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, onnx=None)


def run(args) -> int:
    import torch

    from ..evaluation import fit_temperature, pixel_logits
    from ..evaluation.temperature import FIT_PIXELS, single_view
    from ..inference import TestConfig
    from ..models import create_model, recorded_training_data, save_model
    from ..runtime import use_device
    from ..train import load_config
    from ..utils import check_can_make_folder, resolve_device
    from .eval import training_note, use_run_folder

    use_run_folder(args)
    if not args.checkpoint:
        raise ValueError("no model to calibrate: give --checkpoint (a run's final_model folder, a checkpoint or an "
                         "official MMSegmentation file), or a training run's folder as CONFIG")
    config = load_config(args.config, args.overrides)
    source = args.checkpoint
    model = create_model(checkpoint=source)
    saved = model.config.test_settings
    test_config = TestConfig.from_dict(saved) if saved else config.evaluation
    channels = check_test_channels(model, test_config, source)
    split = args.split or config.data.val_split
    out = Path(args.out) if args.out else default_output(source)
    check_can_make_folder(out)
    device = resolve_device(args.device or config.train.device)
    use_device(device)
    if device.type == "cpu" and config.train.threads:
        torch.set_num_threads(config.train.threads)
    dataset = config.data.build(split, channels=channels, bands=test_config.bands)
    if model.num_classes != dataset.num_classes:
        raise ValueError(f"{source} predicts {model.num_classes} classes but the {config.data.dataset} dataset has "
                         f"{dataset.num_classes}; calibrate it with a config for its dataset.")
    note = training_note(source, config, split)
    if note:
        print(f"segnext calibrate: warning: {note} A temperature fitted on images a model trained on makes it "
              f"more sure than it should be on others: fit it on images it has not seen (--split).", file=sys.stderr)
    count = min(len(dataset), args.max_images or len(dataset))
    view = single_view(test_config)
    print(f"{source} on {config.data.dataset} {split} ({count} images): {view.describe()}", file=sys.stderr)
    logits, labels = pixel_logits(model.eval().to(device), dataset, test_config, max_images=args.max_images,
                                  max_pixels=args.pixels or FIT_PIXELS, device=device, progress=not args.no_progress)
    fitted = fit_temperature(logits, labels, ignore_index=getattr(dataset, "ignore_index", 255))
    previous = model.config.logit_temperature
    model.config.logit_temperature = previous * fitted["temperature"]
    print(f"temperature {fitted['temperature']:.3f}, fitted on {fitted['pixels']:,} labelled pixels of {count} "
          f"images: negative log-likelihood {fitted['nll_before']:.4f} -> {fitted['nll_after']:.4f}, ECE "
          f"{fitted['ECE_before']:.2f}% -> {fitted['ECE_after']:.2f}%, mean confidence "
          f"{fitted['mean_confidence_before']:.1f}% -> {fitted['mean_confidence_after']:.1f}% for an accuracy of "
          f"{fitted['accuracy']:.1f}%")
    save_model(model.cpu(), out, training_data=recorded_training_data(source),
               source=f"{Path(source).name}, calibrated by `segnext calibrate`: its logits divided by "
                      f"{model.config.logit_temperature:.3f}, fitted on {fitted['pixels']:,} labelled pixels of "
                      f"{count} images of {config.data.dataset} {split} (ECE there {fitted['ECE_before']:.2f}% -> "
                      f"{fitted['ECE_after']:.2f}%, one view).")
    total = f" (with the {previous:.3f} it had: {model.config.logit_temperature:.3f})" if previous != 1 else ""
    print(f"wrote {out}: the model with logit_temperature {fitted['temperature']:.3f}{total}, the weights unchanged; "
          f"check it on other images with segnext eval CONFIG -c {out} --calibration")
    return 0


def default_output(source: str) -> Path:
    """NAME_calibrated beside a model folder or file, else (published weights) in the working folder."""
    path = Path(source)
    name = f"{path.stem if path.suffix in ('.pt', '.pth', '.pkl', '.safetensors') else path.name}_calibrated"
    return path.with_name(name) if path.exists() else Path(name.replace(".", "_"))
