"""The training loop: `train(config, work_dir)` runs one training from start (or resume) to report.

Read top to bottom, one optimizer step is (`step.train_step`):

    lr <- schedule(iteration)
    for each of `accumulation` micro-batches:          # batch_size = processes x micro x accumulation
        seed the model's random draws from the micro-batch's position in the sample stream
        logits = model.forward_logits(images)          # stride 8, as the official loss
        loss = cross-entropy(resize(logits), labels)   # / all pixels (official) or / valid pixels
        backward(loss / accumulation)                  # DDP averages over processes on the last one
    stop if the loss is NaN/inf (the last checkpoint stays the last good one)
    clip the gradients' global norm (optimizer.clip_grad_norm, off by default)
    optimizer step (through the GradScaler with fp16)
    log / evaluate / checkpoint / stop on request or time limit

Everything that decides what happens at step `it` (lr, samples, augmentation, drop-path and NMF
draws) is a function of `it` and the seed, so resuming from a checkpoint continues exactly the run
that was interrupted, and 1 process x accumulation 2 trains exactly like 2 processes. The loop
changes no process-wide state (`segnext.runtime` is the command line's business).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import torch
from torch import nn

from ..compat import cpu_float16_autocast, grad_scaler
from ..devices import device_defaults, reading_workers
from ..evaluation import (
    STOPPED_ELSEWHERE,
    EvaluationStopped,
    evaluate,
    format_calibration,
    format_groups,
    format_interval,
    format_results,
    resampled_scores,
    test_record,
    write_per_image,
    write_results,
)
from ..models import save_model, segmentation_loss
from ..ops.strip_conv_grad import use_transposed_strip_grads
from ..utils import user_path
from . import distributed, state
from .config import Config
from .loggers import RunLog, open_run_log, require_trackers
from .optim import build_optimizer, peak_lr_factor, scheduled_lr, set_learning_rates
from .progress import LogWindow, ProgressBar, log_line
from .report import HARDEST, HARDEST_SHOWN, PER_IMAGE, REPORT_DATA, draw_hardest, save_report_data, write_report
from .sampler import default_num_workers, step_seeds, training_loader
from .step import StrideEightLogits, TrainingDiverged, next_micro_batches, train_step
from .unreadable import UnreadableFiles


@dataclass
class TrainResult:
    work_dir: Path
    iteration: int
    stop_reason: str  # "finished", "time limit", "SIGINT", "SIGTERM"
    results: Optional[Dict[str, Any]] = None  # the final evaluation (None when stopped on request)
    best: Dict[str, Any] = field(default_factory=dict)
    report: Optional[Path] = None
    seconds: float = 0.0  # wall-clock time of the whole run, earlier sessions included
    unreadable_files: int = 0  # training files skipped as unreadable (data.on_unreadable: skip)

    @property
    def exit_code(self) -> int:
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.stop_reason, 0)


def requested_stop(stopped: EvaluationStopped) -> str:
    """Why an evaluation stopped, as `distributed.first_reason` says it: a request to another process
    counts as SIGTERM, so that every process stops alike (and exits with 143)."""
    return "SIGTERM" if stopped.reason == STOPPED_ELSEWHERE else stopped.reason


def train(config: Config, work_dir: Union[str, Path], resume: Union[str, Path, bool, None] = True,
          progress: bool = True, should_stop: Optional[Callable[[], Optional[str]]] = None) -> TrainResult:
    """Train as `config` says, writing checkpoints, logs and the report under `work_dir`.

    resume: True resumes from the newest checkpoint in work_dir/checkpoints when there is one;
        a path resumes from that training checkpoint; False starts from scratch.
    should_stop: called after every step; a reason (e.g. "SIGTERM", from
        `segnext.runtime.StopRequests`) saves a checkpoint and ends the run.
    Under `torchrun` every process calls this; rank 0 writes the files.
    """
    env = distributed.setup(config.train.device, config.train.distributed_timeout_minutes)
    failed, run = False, None
    try:
        run = Run(config, user_path(work_dir), env, progress)
        run.start(resume)
        result = run.loop(should_stop or (lambda: None))
        distributed.barrier(env)  # no process tears its connections down while another still uses them
        return result
    except Exception as error:
        # Under torchrun: tell the other processes why this one fails, or name the one that failed.
        failed = True
        explained = distributed.explain_failure(error, env, f"Run the same command again to resume from the last "
                                                           f"checkpoint in {user_path(work_dir) / 'checkpoints'}.")
        if explained is error:
            raise
        raise explained from error
    finally:
        if run is not None and run.log is not None:
            # Still open only when an error or an interrupt ended the run: the trackers record it as failed
            # (an MLflow run would otherwise stay RUNNING) and log.jsonl is closed.
            run.log.close("failed")
        distributed.cleanup(env, failed)


class Run:
    """One training run: `start` builds everything (and resumes), `loop` trains, `finish` reports."""

    def __init__(self, config: Config, work_dir: Path, env: distributed.Distributed, progress: bool):
        self.config, self.work_dir, self.env, self.progress = config, work_dir, env, progress
        self.checkpoints = work_dir / "checkpoints"
        self.iteration, self.elapsed_before, self.best, self.last_saved, self.bar = 0, 0.0, {}, -1, None
        self.evaluation_due = False  # this iteration's periodic evaluation was stopped before its end
        self.log: Optional[RunLog] = None  # opened by start() on the process that writes files
        self.should_stop: Callable[[], Optional[str]] = lambda: None  # `loop`'s: stop requests
        self.session_start = time.perf_counter()

    def start(self, resume) -> None:
        config, env = self.config, self.env
        if env.is_main:
            require_trackers(config.train.loggers)  # a missing package is named before any work
        self.accumulation = config.train.accumulation(env.world_size)
        self.train_set = config.data.build(config.data.train_split, config.data.train_transform(), config.train.seed)
        self.val_set = config.data.build(config.data.val_split)
        self.selection_notes = config.follow_class_selection(self.train_set)
        self.num_classes = config.model.checked_num_classes(self.train_set)
        config.loss.check_class_weight(self.train_set)
        self.paste = config.data.class_paste(self.train_set.class_names)
        self.num_workers = config.data.num_workers if config.data.num_workers is not None \
            else default_num_workers(env.local_world_size)
        with torch.random.fork_rng(devices=[]):  # the same initial weights on every process
            torch.manual_seed(config.train.seed)
            self.model, self.loading_lines = config.model.build(self.train_set, nmf_seed=config.evaluation.nmf_seed)
        self.model.config.test_settings = config.evaluation.to_dict()  # saved with every model folder of the run
        if config.model.sync_bn and env.device.type == "cuda" and env.enabled:
            if config.train.grad_checkpointing:  # its recomputation would run SyncBatchNorm's collectives in backward
                raise ValueError("train.grad_checkpointing and model.sync_bn cannot be used together under torchrun "
                                 "yet; set one of them to false")
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.set_grad_checkpointing(config.train.grad_checkpointing)
        self.model.freeze_encoder(config.model.frozen_stages)
        defaults = device_defaults(env.device)  # what a key left at null means on this device
        channels_last = config.train.channels_last
        if channels_last is None:
            channels_last = defaults.train_channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(env.device, memory_format=self.memory_format)
        if config.train.transposed_strip_grads and env.device.type == "cpu":
            use_transposed_strip_grads(self.model)
        self.optimizer = build_optimizer(self.model, config.optimizer)
        amp_dtype = config.train.amp_dtype or defaults.train_amp_dtype
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp_dtype] if config.train.amp else None
        if self.amp_dtype == torch.float16 and env.device.type == "cpu" and not cpu_float16_autocast():
            raise ValueError(f"train.amp_dtype=fp16: float16 autocast on the CPU needs PyTorch 2.4 or newer (this is "
                             f"{torch.__version__}); use train.amp_dtype=bf16, or a newer PyTorch")
        self.scaler = grad_scaler(env.device.type, enabled=self.amp_dtype == torch.float16)
        path = state.resume_path(self.checkpoints, resume, env)
        checkpoint = state.load(path) if path is not None else None
        if checkpoint is not None:  # a wrong --resume, or another run's work dir, fails here: nothing is touched
            state.check_resumable(checkpoint, path, self.model, config, self.num_classes)
        # Everything above can fail on a bad config or a missing file; only now touch the work dir.
        if env.is_main:
            state.prepare_work_dir(self.work_dir, config.to_yaml(), keep_previous=resume is not False)
        distributed.barrier(env)
        saved = {}
        if checkpoint is not None:
            saved = state.restore(checkpoint, self.model, self.optimizer, self.scaler, config)
            del checkpoint
            self.iteration, self.elapsed_before, self.best = saved["iteration"], saved["elapsed_seconds"], saved["best"]
            self.evaluation_due = saved["evaluation_due"]
            if path.parent.resolve() == self.checkpoints.resolve():
                self.last_saved = self.iteration
            self.say(f"Resumed from {path} at iteration {self.iteration}.")
            if saved["changed_settings"]:  # on purpose (a longer schedule) or not (another config, same work dir)
                self.say("  settings changed since that checkpoint: " + "; ".join(saved["changed_settings"]))
        skipping = config.data.on_unreadable == "skip"
        self.unreadable = UnreadableFiles(
            len(self.train_set), skipping, config.data.max_unreadable_fraction, saved.get("unreadable_files", ()),
            share=(lambda found: distributed.gather_lists(found, env)) if skipping else (lambda found: found))
        self.forward = StrideEightLogits(self.model)
        if env.enabled:
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        loss = config.loss
        banded = defaults.train_banded_loss if loss.banded is None else loss.banded
        self.loss_fn = lambda logits, labels: segmentation_loss(
            logits, labels, self.train_set.ignore_index, loss.reduction, loss.class_weight, banded=banded,
            ohem_threshold=loss.ohem_threshold, ohem_min_kept=loss.ohem_min_kept, dice_weight=loss.dice_weight)
        # A resumed run drops what the interrupted one logged after its last checkpoint (that work is redone).
        self.log = open_run_log(self.work_dir, self.iteration, config) if env.is_main else None
        # What the run trains on (recorded in final_model) and what that makes its val scores worth.
        self.training_data = config.data.training_data() if env.is_main else None
        self.validation_note = config.data.validation_note(self.training_data) if env.is_main else None
        self.normalisation_note = config.data.normalisation_note(self.train_set) if env.is_main else None

    def loop(self, should_stop: Callable[[], Optional[str]]) -> TrainResult:
        config, env, train_cfg = self.config, self.env, self.config.train
        self.session_start = time.perf_counter()
        self.should_stop = should_stop
        self.say(config.summary(self.model, self.train_set, self.val_set, env.world_size, str(env.device),
                                self.work_dir, self.num_workers))
        if self.iteration == 0:  # a resumed run continues from its checkpoint, not from these
            for line in self.loading_lines:
                self.say(f"  {line}")
        frozen = config.model.frozen_stages
        if frozen:
            trained = "the decoder alone" if frozen == self.model.backbone.num_stages else \
                f"encoder stages {frozen + 1}-{self.model.backbone.num_stages} and the decoder"
            trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
            self.say(f"  model.frozen_stages {frozen}: encoder stages 1-{frozen} as loaded, {trained} trained "
                     f"({trainable:,} parameters)")
        if self.validation_note:
            self.say(f"  note: {self.validation_note}")
        if self.normalisation_note:
            self.say(f"  warning: {self.normalisation_note}")
        for note in self.selection_notes:
            self.say(f"  note: {note}")
        peak = peak_lr_factor(train_cfg.max_iters, config.schedule)
        if not config.schedule.by_time and peak < 0.5:
            self.say(f"  note: the learning rate peaks at {peak:.0%} of optimizer.lr: schedule.warmup_iters "
                     f"({config.schedule.warmup_iters}) is long for train.max_iters ({train_cfg.max_iters}), and the "
                     f"warm-up multiplies the decay. A shorter warm-up, e.g. schedule.warmup_iters="
                     f"{max(1, train_cfg.max_iters // 10)}, lets it reach it.")
        budget = train_cfg.max_time_minutes * 60 if train_cfg.max_time_minutes else None
        if env.is_main and self.progress:
            self.bar = ProgressBar(train_cfg.max_iters, self.iteration, budget, self.elapsed())
        loader = training_loader(self.train_set, train_cfg.seed, train_cfg.batch_size, train_cfg.micro_batch_size,
                                 self.num_workers, env.rank, env.world_size, self.iteration,
                                 pin_memory=env.device.type == "cuda", paste=self.paste)
        batches = self.unreadable.watch(iter(loader), self.report_unreadable) \
            if self.iteration < train_cfg.max_iters else None
        window = LogWindow()
        # A resumed run whose time budget was spent before it (stopped during its final evaluation) only
        # evaluates; this session's set-up is not counted here, or a short budget could end a run before its
        # first step.
        spent = train_cfg.max_time_minutes is not None and self.elapsed_before >= train_cfg.max_time_minutes * 60
        stop_reason = distributed.first_reason(None, "time limit" if spent else None, env)
        try:
            if self.evaluation_due and stop_reason is None and self.iteration < train_cfg.max_iters:
                self.say(f"The evaluation of iteration {self.iteration} was stopped before its end: evaluating now.")
                stop_reason = self.periodic_evaluation()
            while self.iteration < train_cfg.max_iters and stop_reason is None:
                # schedule.by_time: the lr decays over the time budget (rank 0's clock for everyone)
                progress = distributed.broadcast_float(self.elapsed() / (train_cfg.max_time_minutes * 60), env) \
                    if config.schedule.by_time else None
                set_learning_rates(self.optimizer, self.iteration, train_cfg.max_iters, config.schedule, progress)
                fetch_start = time.perf_counter()
                micro_batches = next_micro_batches(batches, self.accumulation, env.device, self.memory_format)
                fetch_seconds = time.perf_counter() - fetch_start
                seeds = step_seeds(train_cfg.seed, self.iteration, self.accumulation, env.rank, train_cfg.batch_size,
                                   env.world_size, train_cfg.micro_batch_size)
                try:
                    loss, grad_norm = train_step(
                        self.forward, micro_batches, seeds, self.loss_fn, self.optimizer, self.scaler, self.amp_dtype,
                        lambda value: distributed.all_reduce_mean(value, env), config.optimizer.clip_grad_norm)
                except TrainingDiverged as error:
                    self.write_log({"type": "diverged", "iter": self.iteration + 1, "loss": error.args[0]})
                    kept = state.latest_checkpoint(self.checkpoints) if env.is_main else None
                    raise TrainingDiverged.at(self.iteration + 1, error.args[0], kept) from None
                self.iteration += 1
                lr = scheduled_lr(config.optimizer.lr, self.iteration - 1, train_cfg.max_iters, config.schedule,
                                  progress)
                window.add(loss, fetch_seconds, grad_norm)
                if self.bar is not None:
                    self.bar.update(self.iteration, self.elapsed(), loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                if self.iteration % train_cfg.log_interval == 0 or self.iteration == train_cfg.max_iters:
                    record = {"type": "train", "iter": self.iteration, "lr": lr, **window.summary(),
                              "elapsed_s": round(self.elapsed(), 1)}
                    self.write_log(record)
                    if self.bar is None:
                        self.say(log_line(record, train_cfg.max_iters, budget))
                    window = LogWindow()
                if train_cfg.eval_interval and self.iteration % train_cfg.eval_interval == 0 \
                        and self.iteration < train_cfg.max_iters:
                    stop_reason = self.periodic_evaluation()
                if self.iteration % train_cfg.checkpoint_interval == 0:
                    self.save_checkpoint()
                over_time = train_cfg.max_time_minutes is not None and self.elapsed() >= train_cfg.max_time_minutes * 60
                limit = "time limit" if over_time else None
                stop_reason = distributed.first_reason(stop_reason or should_stop(), limit, env)
        finally:
            del batches  # stops the loader's worker processes
            if self.bar is not None:
                self.bar.close()
                self.bar = None
        if self.last_saved != self.iteration:
            self.save_checkpoint()
        if stop_reason not in (None, "time limit"):
            self.say(f"Stopped by {stop_reason} at iteration {self.iteration}; checkpoint saved in "
                     f"{self.checkpoints}. Run the same command again to resume.")
            if self.log is not None:
                self.log.close("stopped")
            return TrainResult(self.work_dir, self.iteration, stop_reason, best=self.best, seconds=self.elapsed())
        if stop_reason == "time limit":
            self.say(f"Time limit of {train_cfg.max_time_minutes} min reached at iteration {self.iteration}.")
        return self.finish(stop_reason or "finished")

    def periodic_evaluation(self) -> Optional[str]:
        """Evaluate on the way; a stop request during it drops it and is returned (the checkpoint
        then records the evaluation as due, for the resumed run)."""
        self.evaluation_due = False  # as best.pt, saved during the evaluation, records it
        try:
            self.evaluate(final=False)
        except EvaluationStopped as stopped:
            self.evaluation_due = True
            return requested_stop(stopped)
        return None

    def evaluate(self, final: bool) -> Dict[str, Any]:
        env, evaluation = self.env, self.config.evaluation
        distributed.broadcast_buffers(self.model, env)  # everyone evaluates rank 0's BN statistics
        max_images = None if final else evaluation.max_images
        images = min(len(self.val_set), max_images or len(self.val_set)) // env.world_size
        results = evaluate(self.model, self.val_set, evaluation, num_classes=self.num_classes,
                           max_images=max_images, device=env.device,
                           shard=(env.rank, env.world_size), reduce=lambda t: distributed.all_reduce_sum(t, env),
                           progress=self.progress, keep_predictions=evaluation.num_overlays if final else 0,
                           also_first=evaluation.max_images if final else None,
                           workers=reading_workers(images, env.device), per_image=final, calibration=final,
                           should_stop=self.should_stop)  # a stop request ends the evaluation at once
        # "Best" compares like with like: when periodic evaluations score only the first max_images
        # images, the final one is ranked by its score on those same images.
        ranked = results.get("first_images", results)
        improved = not math.isnan(ranked["mIoU"]) and ranked["mIoU"] > self.best.get("mIoU", -1.0)
        if improved:
            self.best = {"mIoU": ranked["mIoU"], "iteration": self.iteration, "num_images": ranked["num_images"]}
            self.save_checkpoint("best.pt")
        self.write_log({"type": "eval", "iter": self.iteration, "final": final, "mIoU": results["mIoU"],
                        "aAcc": results["aAcc"], "mAcc": results["mAcc"], "IoU": results["IoU"],
                        "num_images": results["num_images"], "seconds": round(results["seconds"], 2)})
        self.say(f"[iter {self.iteration}] val mIoU {results['mIoU']:.2f}  aAcc {results['aAcc']:.2f}  "
                 f"mAcc {results['mAcc']:.2f}  ({results['num_images']} images, {results['seconds']:.0f} s)"
                 + ("  best so far" if improved else ""))
        return results

    def finish(self, stop_reason: str) -> TrainResult:
        try:
            results = self.evaluate(final=True)  # the full val set, with overlays for the report
        except EvaluationStopped as stopped:
            reason = requested_stop(stopped)
            self.say(f"Stopped by {reason} during the final evaluation; the training is complete (its "
                     f"checkpoint is in {self.checkpoints}). Run the same command again to evaluate it.")
            if self.log is not None:
                self.log.close("stopped")
            return TrainResult(self.work_dir, self.iteration, reason, best=self.best, seconds=self.elapsed())
        report = None
        if self.env.is_main:
            # each val image's class areas and the interval they give: `segnext eval --compare` takes this file
            resampled = resampled_scores(results, self.val_set)
            write_results(self.work_dir / "results.json", results, iteration=self.iteration, best=self.best,
                          config=self.config.description or None, train_seconds=round(self.elapsed(), 1),
                          stop_reason=stop_reason, validation_note=self.validation_note,
                          unreadable_training_files=[message for _, message in self.unreadable.as_list()],
                          checkpoint=str(self.work_dir / "final_model"), dataset=self.config.data.dataset,
                          split=self.config.data.val_split,
                          test=test_record(self.config.evaluation, self.config.evaluation.nmf_seed, "float32"),
                          **resampled)
            source = (f"Trained by `segnext train` for {self.iteration} iterations on {self.config.data.title()} "
                      f"({len(self.train_set)} training images), starting from {self.config.model.starting_point()}.")
            save_model(self.model, self.work_dir / "final_model", source=source,
                       metrics=self.final_metrics(results, resampled["interval"]),
                       training_data=self.training_data)
            self.say(format_results(results))
            self.say(format_interval(resampled["interval"]))
            self.say(format_calibration(results["calibration"], table=False))
            if resampled.get("per_group"):
                self.say(format_groups(resampled["per_group"]))
            if self.validation_note:
                self.say(f"note: {self.validation_note}")
            write_per_image(self.work_dir / PER_IMAGE, results, resampled["image_areas"]["groups"])
            save_report_data(self.work_dir, results, self.model.config.palette, self.model.config.class_names,
                             self.train_set.ignore_index)
            draw_hardest(self.model, self.val_set, results["per_image"], self.config.evaluation, self.env.device,
                         HARDEST_SHOWN, self.work_dir / REPORT_DATA / HARDEST)
            written = write_report(self.work_dir)
            report = written.png or written.html
            self.log.add_files([written.html, written.png, self.work_dir / "results.json"])
            self.log.close()
            if len(self.unreadable):
                self.say(f"Skipped {len(self.unreadable)} unreadable training file(s) during the run: listed in "
                         f"{self.work_dir / 'results.json'} and log.jsonl.")
            self.say(f"Results: {self.work_dir / 'results.json'}; model: {self.work_dir / 'final_model'}; report: "
                     + ", ".join(str(p) for p in (written.png, written.html) if p))
        results.pop("predictions", None)
        return TrainResult(self.work_dir, self.iteration, stop_reason, results, dict(self.best), report, self.elapsed(),
                           len(self.unreadable))

    def final_metrics(self, results: Dict[str, Any], interval: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """What the model card says of the final evaluation, with the `interval` of its scores
        (`resampled_scores`'s; results.json has the rest)."""
        metrics = {"mIoU": results["mIoU"], "aAcc": results["aAcc"], "mAcc": results["mAcc"],
                   "dataset": self.config.data.title(), "split": self.config.data.val_split,
                   "num_images": results["num_images"]}
        if interval is not None:
            metrics["interval"] = {key: interval[key] for key in ("level", "samples", "unit", "units", "mIoU", "aAcc",
                                                                  "mAcc", "note")}
        if "calibration" in results:
            metrics["calibration"] = {key: results["calibration"][key]
                                      for key in ("pixels", "mean_confidence", "accuracy", "ECE")}
        return metrics

    def save_checkpoint(self, name: Optional[str] = None) -> None:
        """iter_XXXXXXXX.pt (the last `keep_checkpoints` are kept), or `name` (best.pt)."""
        if name is None:
            self.last_saved = self.iteration
        if self.env.is_main:
            saved = state.training_state(self.model, self.optimizer, self.scaler, self.iteration, self.elapsed(),
                                         self.best, self.env.world_size, self.config.to_dict(),
                                         self.unreadable.as_list(), self.evaluation_due)
            state.save(saved, self.checkpoints / (name or state.checkpoint_name(self.iteration)))
            if name is None:
                state.prune(self.checkpoints, self.config.train.keep_checkpoints)

    def report_unreadable(self, index: int, message: str) -> None:
        """A training file that cannot be read, met for the first time (data.on_unreadable: skip)."""
        self.say(f"warning: skipped an unreadable training file ({len(self.unreadable)} so far): {message}")
        self.write_log({"type": "unreadable", "iter": self.iteration + 1, "index": index, "error": message})

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.session_start

    def say(self, message: str) -> None:
        if self.env.is_main:
            (self.bar.write if self.bar is not None else print)(message)

    def write_log(self, record: Dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(record)
