"""The training loop: `train(config, work_dir)` runs one training from start (or resume) to report.

Read top to bottom, one optimizer step is:

    lr <- schedule(iteration)
    for each of `accumulation` micro-batches:          # batch_size = processes x micro x accumulation
        seed the model's RNG from the micro-batch's position in the sample stream
        logits = model.forward_logits(images)          # stride 8, as the official loss
        loss = cross-entropy(resize(logits), labels)   # / all pixels (official) or / valid pixels
        backward(loss / accumulation)                  # DDP averages over processes on the last one
    stop if the loss is NaN/inf (the last checkpoint stays the last good one)
    optimizer step (through the GradScaler with fp16)
    log / evaluate / checkpoint / stop on signal or time limit

Everything that decides what happens at step `it` (lr, samples, augmentation, drop-path and NMF
draws) is a function of `it` and the seed, so resuming from a checkpoint continues exactly the run
that was interrupted, and 1 process x accumulation 2 trains exactly like 2 processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from torch import nn

from .. import memory
from . import checkpointing, distributed
from .config import Config, ConfigError
from .datasets import build_train_set, build_val_set
from .loss import segmentation_loss
from .optim import build_optimizer, scheduled_lr, set_learning_rates
from .report import RunLog, write_report
from .sampler import SampleAt, TrainStreamSampler, micro_batch_position, mix_seed


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration and the checkpoint to use."""


@dataclass
class TrainResult:
    work_dir: Path
    iteration: int
    stop_reason: str  # "finished", "time limit", "SIGINT", "SIGTERM"
    results: Optional[Dict[str, Any]] = None  # the final evaluation (None when stopped by a signal)
    best: Dict[str, Any] = field(default_factory=dict)
    report: Optional[Path] = None
    seconds: float = 0.0  # wall-clock time of the whole run, earlier sessions included

    @property
    def exit_code(self) -> int:
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.stop_reason, 0)


class _LogitsForDDP(nn.Module):
    """DDP calls `forward`; training needs the stride-8 logits (`forward_logits`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_logits(images)


class _StopRequests:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the end of the step and exits."""

    def __init__(self):
        self.signal_name: Optional[str] = None
        self._previous = {}

    def __enter__(self):
        if threading_is_main():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _worker_init(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; the main process handles it (saves, then stops the
    # workers), so a worker must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ..data import seed_worker  # per-worker global RNG seeds (augmentations use per-sample ones)

    seed_worker(worker_id)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def train(config: Config, work_dir: Union[str, Path], resume: Union[str, Path, bool, None] = True,
          progress: bool = True) -> TrainResult:
    """Train as `config` says, writing checkpoints, logs and the report under `work_dir`.

    resume: True resumes from the newest checkpoint in work_dir/checkpoints when there is one;
    a path resumes from that training checkpoint; False starts from scratch.
    Under `torchrun` every process calls this; rank 0 writes the files. On Linux/glibc it also sets
    this process's malloc to keep freed memory for reuse (`segnext.memory.reuse_freed_memory`:
    measured 1.13 -> 0.89 s per SegNeXt-T step on a CPU).
    """
    memory.reuse_freed_memory()
    env = distributed.setup(config.train.device)
    try:
        return _Trainer(config, Path(work_dir), env, progress).run(resume)
    finally:
        distributed.cleanup(env)


class _Trainer:
    def __init__(self, config: Config, work_dir: Path, env: distributed.Distributed, progress: bool):
        self.config, self.work_dir, self.env, self.progress = config, work_dir, env, progress
        self.checkpoint_dir = work_dir / "checkpoints"
        self.bar = None

    # -- console -----------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        if not self.env.is_main:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    # -- set-up ------------------------------------------------------------------------------------
    def run(self, resume) -> TrainResult:
        config, env = self.config, self.env
        train_cfg = config.train
        if env.device.type == "cpu":
            torch.set_num_threads(train_cfg.threads or max(1, _cpu_count() // env.local_world_size))
        per_step = env.world_size * train_cfg.micro_batch_size
        if train_cfg.batch_size % per_step:
            raise ConfigError(
                f"train.batch_size ({train_cfg.batch_size}) must be a multiple of train.micro_batch_size "
                f"({train_cfg.micro_batch_size}) x processes ({env.world_size}) = {per_step}; change one of them.")
        self.accumulation = train_cfg.batch_size // per_step

        self.train_set = build_train_set(config)
        self.val_set = build_val_set(config)
        self.num_classes = config.model.num_classes or self.train_set.num_classes
        if self.num_classes != self.train_set.num_classes:
            raise ConfigError(f"model.num_classes is {config.model.num_classes} but the {config.data.dataset} "
                              f"dataset has {self.train_set.num_classes} classes; remove model.num_classes or fix it.")
        self.ignore_index = getattr(self.train_set, "ignore_index", 255)

        torch.manual_seed(train_cfg.seed)  # the same initial weights on every process
        self.memory_format = torch.channels_last if train_cfg.channels_last else torch.contiguous_format
        self.model = self._build_model().to(env.device, memory_format=self.memory_format)
        self.optimizer = build_optimizer(self.model, config.optimizer)
        self.amp_dtype = torch.float16 if env.device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=train_cfg.amp and env.device.type == "cuda")
        self.iteration, self.elapsed_before, self.best = 0, 0.0, {}

        # Everything above can fail on a bad config or a missing file; only now touch the work dir.
        if env.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            checkpointing.remove_stale_temporaries(self.checkpoint_dir)
            (self.work_dir / "config.yaml").write_text(config.to_yaml())
        distributed.barrier(env)

        resume_path = self._resume_path(resume)
        self.last_saved = -1  # the iteration of the newest checkpoint in this work dir
        if resume_path is not None:
            self._restore(resume_path)
            if resume_path.resolve().parent == self.checkpoint_dir.resolve():
                self.last_saved = self.iteration
        self.forward = _LogitsForDDP(self.model)
        if env.enabled:
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        # A resumed run drops what the interrupted one logged after its last checkpoint (that work is redone).
        self.log = RunLog(self.work_dir, resume_iteration=self.iteration) if env.is_main else None
        try:
            return self._loop()
        finally:
            if self.bar is not None:
                self.bar.close()
            if self.log is not None:
                self.log.close()

    def _build_model(self) -> nn.Module:
        from ..models import create_model

        config = self.config
        extra = {}
        names, palette = getattr(self.train_set, "class_names", None), getattr(self.train_set, "palette", None)
        if names is not None and len(names) == self.num_classes:
            extra["class_names"] = list(names)
            if palette is not None and len(palette) == self.num_classes:
                extra["palette"] = [list(map(int, c)) for c in palette]
        for key in ("backbone_checkpoint", "checkpoint"):
            path = getattr(config.model, key)
            if path is not None and not Path(path).exists():
                raise FileNotFoundError(
                    f"model.{key} {path} does not exist. "
                    + ("Download the ImageNet MSCAN weights of the authors' release (mscan_t.pth ...) there, see "
                       "docs/training.md, or train from scratch with model.backbone_checkpoint=null."
                       if key == "backbone_checkpoint" else "Fix the path or set model.checkpoint=null."))
        model = create_model(config.model.name, self.num_classes, checkpoint=config.model.checkpoint,
                             backbone_checkpoint=config.model.backbone_checkpoint,
                             nmf_seed=config.evaluation.nmf_seed, **config.model.options, **extra)
        if config.model.sync_bn:
            if self.env.device.type == "cuda" and self.env.enabled:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                self.say("note: model.sync_bn is ignored: SyncBatchNorm needs CUDA and several processes.")
        return model

    def _resume_path(self, resume) -> Optional[Path]:
        if resume is False or resume is None:
            if self.env.is_main and checkpointing.iteration_checkpoints(self.checkpoint_dir):
                # Starting over in a used work dir: keep the old run, but out of the way of auto-resume.
                stamp = time.strftime("%Y%m%d-%H%M%S")
                self.checkpoint_dir.rename(self.work_dir / f"checkpoints_{stamp}")
                self.checkpoint_dir.mkdir()
                if (self.work_dir / "log.jsonl").exists():
                    (self.work_dir / "log.jsonl").rename(self.work_dir / f"log_{stamp}.jsonl")
                self.say(f"Not resuming: the earlier run's checkpoints and log were moved to "
                         f"{self.work_dir / ('checkpoints_' + stamp)} and log_{stamp}.jsonl.")
            distributed.barrier(self.env)
            return None
        if resume is True:
            found = checkpointing.latest_checkpoint(self.checkpoint_dir) if self.env.is_main else None
            found = distributed.broadcast_object(str(found) if found else None, self.env)
            return Path(found) if found else None
        return Path(resume)

    def _restore(self, path: Path) -> None:
        state = checkpointing.load(path)
        saved_model = state.get("config", {}).get("model", {})
        for key in ("name", "num_classes"):
            now = getattr(self.config.model, key) if key == "name" else self.num_classes
            if saved_model.get(key) not in (None, now):
                raise ConfigError(f"Cannot resume from {path}: it trained model.{key}={saved_model.get(key)!r} but "
                                  f"this config has {now!r}. Use a new --work-dir to start a different run.")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        self.iteration = int(state["iteration"])
        self.elapsed_before = float(state.get("elapsed_seconds", 0.0))
        self.best = dict(state.get("best") or {})
        rng_states = state.get("rng") or []
        if len(rng_states) == self.env.world_size:
            checkpointing.restore_rng_state(rng_states[self.env.rank])
        else:
            self.say(f"note: {path} was written by {len(rng_states)} process(es), this run has "
                     f"{self.env.world_size}; RNG states start fresh (samples and model draws are unaffected: "
                     f"they depend only on the iteration).")
        self.say(f"Resumed from {path} at iteration {self.iteration}.")

    # -- checkpoints -------------------------------------------------------------------------------
    def _state(self) -> Dict[str, Any]:
        model = self.model
        return {
            "format": checkpointing.FORMAT, "format_version": checkpointing.FORMAT_VERSION,
            "iteration": self.iteration, "elapsed_seconds": self._elapsed(), "best": dict(self.best),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": distributed.all_gather_objects(checkpointing.capture_rng_state(), self.env),
            "world_size": self.env.world_size,
            "config": self.config.to_dict(),
            "meta": {"CLASSES": list(model.config.class_names or []), "PALETTE": list(model.config.palette or [])},
        }

    def save_checkpoint(self) -> Optional[Path]:
        state = self._state()  # on every process: it gathers the per-rank RNG states
        self.last_saved = self.iteration
        if not self.env.is_main:
            return None
        path = checkpointing.save(state, self.checkpoint_dir / checkpointing.checkpoint_name(self.iteration))
        checkpointing.prune(self.checkpoint_dir, self.config.train.keep_checkpoints)
        return path

    def _time_progress(self) -> Optional[float]:
        """With schedule.by_time: the fraction of the time budget used (None: decay by iterations)."""
        minutes = self.config.train.max_time_minutes
        if not self.config.schedule.by_time:
            return None
        if not minutes:
            raise ConfigError("schedule.by_time needs train.max_time_minutes (the time the lr decays over).")
        progress = torch.tensor(self._elapsed() / (minutes * 60), dtype=torch.float64, device=self.env.device)
        if self.env.enabled:  # rank 0's clock for everyone, so that all processes use the same lr
            torch.distributed.broadcast(progress, src=0)
        return progress.item()

    def _elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self.session_start)

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self, final: bool) -> Dict[str, Any]:
        from ..evaluate import evaluate, test_config_from

        distributed.broadcast_buffers(self.model, self.env)  # everyone evaluates rank 0's BN statistics
        evaluation = self.config.evaluation
        results = evaluate(self.model, self.val_set, test_config_from(evaluation, self.config.data),
                           num_classes=self.num_classes, ignore_index=self.ignore_index,
                           max_images=None if final else evaluation.max_images, device=self.env.device,
                           env=self.env, progress=self.progress,
                           keep_predictions=evaluation.num_overlays if final else 0,
                           also_first=evaluation.max_images if final else None)
        # "Best" compares like with like: when periodic evaluations score only the first max_images
        # images, the final one is ranked by its score on those same images.
        ranked = results.get("first_images", results)
        improved = not self.best or ranked["mIoU"] > self.best.get("mIoU", -1.0)
        if improved and not math.isnan(ranked["mIoU"]):
            self.best = {"mIoU": ranked["mIoU"], "iteration": self.iteration, "num_images": ranked["num_images"]}
            state = self._state()
            if self.env.is_main:
                checkpointing.save(state, self.checkpoint_dir / "best.pt")
        if self.log is not None:
            self.log.write({"type": "eval", "iter": self.iteration, "final": final, "mIoU": results["mIoU"],
                            "aAcc": results["aAcc"], "mAcc": results["mAcc"], "IoU": results["IoU"],
                            "num_images": results["num_images"], "seconds": round(results["seconds"], 2)})
        self.say(f"[iter {self.iteration}] val mIoU {results['mIoU']:.2f}  aAcc {results['aAcc']:.2f}  "
                 f"mAcc {results['mAcc']:.2f}  ({results['num_images']} images, {results['seconds']:.0f} s)"
                 + ("  best so far" if improved else ""))
        return results

    # -- the loop ----------------------------------------------------------------------------------
    def _loader(self):
        config, env = self.config, self.env
        sampler = TrainStreamSampler(len(self.train_set), config.train.seed, config.train.batch_size,
                                     config.train.micro_batch_size, env.rank, env.world_size, self.iteration)
        workers = config.data.num_workers
        loader = torch.utils.data.DataLoader(
            SampleAt(self.train_set, config.train.seed), batch_size=config.train.micro_batch_size, sampler=sampler,
            num_workers=workers, worker_init_fn=_worker_init if workers else None,
            pin_memory=env.device.type == "cuda", persistent_workers=False,
            prefetch_factor=2 if workers else None)
        return iter(loader)

    def _loop(self) -> TrainResult:
        config, env = self.config, self.env
        train_cfg = config.train
        max_iters = train_cfg.max_iters
        self.session_start = time.perf_counter()
        amp = train_cfg.amp
        self._announce()
        if env.is_main and self.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=max_iters, initial=self.iteration, desc="train", unit="it", dynamic_ncols=True,
                            file=sys.stderr, smoothing=0.05)
        batches = self._loader() if self.iteration < max_iters else None
        stop_reason = "finished"
        window_loss, window_steps, window_start, data_seconds = 0.0, 0, time.perf_counter(), 0.0
        with _StopRequests() as stop:
            while self.iteration < max_iters:
                progress = self._time_progress()
                set_learning_rates(self.optimizer, self.iteration, max_iters, config.schedule, progress)
                self.optimizer.zero_grad(set_to_none=True)
                step_loss = torch.zeros((), device=env.device)
                for micro_step in range(self.accumulation):
                    fetch_start = time.perf_counter()
                    batch = next(batches)
                    data_seconds += time.perf_counter() - fetch_start
                    images = batch["image"].to(env.device, non_blocking=True, memory_format=self.memory_format)
                    labels = batch["label"].to(env.device, non_blocking=True)
                    # The model's random draws (drop path, NMF bases, dropout) come from the sample
                    # position, not from how many forwards this process ran: resume- and layout-proof.
                    position = micro_batch_position(self.iteration, micro_step, env.rank, train_cfg.batch_size,
                                                    env.world_size, train_cfg.micro_batch_size)
                    torch.manual_seed(mix_seed(train_cfg.seed, position, 0x6D6F64))
                    last = micro_step == self.accumulation - 1
                    sync = contextlib.nullcontext() if (last or not env.enabled) else self.forward.no_sync()
                    with sync:
                        with torch.autocast(env.device.type, dtype=self.amp_dtype, enabled=amp):
                            logits = self.forward(images)
                        loss = segmentation_loss(logits, labels, self.ignore_index, config.loss.reduction,
                                                 config.loss.class_weight)
                        self.scaler.scale(loss / self.accumulation).backward()
                    step_loss += loss.detach() / self.accumulation
                # One all-reduce per step: the mean loss (to log and to check) and the stop requests,
                # so that every process stops at the same iteration.
                over_time = train_cfg.max_time_minutes is not None and \
                    self._elapsed() >= train_cfg.max_time_minutes * 60
                flags = torch.stack([step_loss.float(), torch.tensor(float(stop.signal_name is not None),
                                                                     device=env.device),
                                     torch.tensor(float(over_time), device=env.device)])
                distributed.all_reduce_sum(flags, env)
                loss_value = flags[0].item() / env.world_size
                if not math.isfinite(loss_value):
                    kept = checkpointing.latest_checkpoint(self.checkpoint_dir) if env.is_main else None
                    if self.log is not None:
                        self.log.write({"type": "diverged", "iter": self.iteration + 1, "loss": loss_value})
                    raise TrainingDiverged(
                        f"The loss became {loss_value} at iteration {self.iteration + 1}; training stopped without "
                        f"saving. The last good checkpoint is {kept or 'none (none was written yet)'}. Lower "
                        f"optimizer.lr, switch off train.amp, or check the data, then resume from it "
                        f"(--resume PATH).")
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.iteration += 1

                window_loss += loss_value
                window_steps += 1
                lr = scheduled_lr(config.optimizer.lr, self.iteration - 1, max_iters, config.schedule, progress)
                if self.bar is not None:
                    self.bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", refresh=False)
                    self.bar.update(1)
                if self.iteration % train_cfg.log_interval == 0 or self.iteration == max_iters:
                    seconds = time.perf_counter() - window_start
                    if self.log is not None:
                        self.log.write({"type": "train", "iter": self.iteration, "loss": window_loss / window_steps,
                                        "lr": lr, "it_per_s": window_steps / seconds,
                                        "data_seconds_per_it": data_seconds / window_steps,
                                        "elapsed_s": round(self._elapsed(), 1)})
                    window_loss, window_steps, window_start, data_seconds = 0.0, 0, time.perf_counter(), 0.0
                if train_cfg.eval_interval and self.iteration % train_cfg.eval_interval == 0 \
                        and self.iteration < max_iters:
                    self.evaluate(final=False)
                if self.iteration % train_cfg.checkpoint_interval == 0:
                    self.save_checkpoint()
                if flags[1].item() > 0:
                    stop_reason = stop.signal_name or "SIGTERM"  # another process got it
                    break
                if flags[2].item() > 0:
                    stop_reason = "time limit"
                    break
            del batches  # stops the loader's worker processes
            if self.last_saved != self.iteration:
                self.save_checkpoint()
        if stop_reason in ("SIGINT", "SIGTERM"):
            self.say(f"Stopped by {stop_reason} at iteration {self.iteration}; checkpoint saved in "
                     f"{self.checkpoint_dir}. Run the same command again to resume.")
            return TrainResult(self.work_dir, self.iteration, stop_reason, best=self.best, seconds=self._elapsed())
        if stop_reason == "time limit":
            self.say(f"Time limit of {train_cfg.max_time_minutes} min reached at iteration {self.iteration}.")
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        return self._finish(stop_reason)

    def _dataset_title(self) -> str:
        data = self.config.data
        return f"{data.dataset} ({data.root})" if data.dataset == "folder" else data.dataset

    def _announce(self) -> None:
        config, env = self.config, self.env
        params = sum(p.numel() for p in self.model.parameters())
        self.say(f"segnext train: {config.model.name} ({params:,} parameters, {self.num_classes} classes) on "
                 f"{self._dataset_title()} ({len(self.train_set)} train / {len(self.val_set)} val images)")
        self.say(f"  batch {config.train.batch_size} = {env.world_size} process(es) x {config.train.micro_batch_size} "
                 f"images x {self.accumulation} accumulation step(s); device {env.device}"
                 f"{', amp ' + str(self.amp_dtype).replace('torch.', '') if config.train.amp else ''}; "
                 f"{config.train.max_iters} iterations"
                 + (f" or {config.train.max_time_minutes} min" if config.train.max_time_minutes else "")
                 + f"; work dir {self.work_dir}")

    def _finish(self, stop_reason: str) -> TrainResult:
        from ..checkpoint import save_model
        from ..evaluate import write_results

        results = self.evaluate(final=True)  # the full val set, with overlays for the report
        report = None
        if self.env.is_main:
            write_results(self.work_dir / "results.json", results, iteration=self.iteration,
                          config=self.config.description or None, best=self.best,
                          train_seconds=round(self._elapsed(), 1))
            save_model(self.model, self.work_dir / "final_model")
            from ..evaluate import format_results

            self.say(format_results(results))
            report = write_report(self.work_dir, results.get("predictions", []), self.model.config.palette,
                                  self.model.config.class_names, self.ignore_index,
                                  title=f"{self.config.model.name} on {self._dataset_title()}: "
                                        f"mIoU {results['mIoU']:.2f} at iteration {self.iteration}")
            self.say(f"Results: {self.work_dir / 'results.json'}; model: {self.work_dir / 'final_model'}"
                     + (f"; report: {report}" if report else ""))
        results.pop("predictions", None)
        return TrainResult(self.work_dir, self.iteration, stop_reason, results, dict(self.best), report,
                           self._elapsed())
