"""The training loop: optimizer and schedule, AMP on CUDA, gradient clipping, EMA, DDP, logs, atomic checkpoints,
exact resume, and a stop with a message (keeping the last good checkpoint) when a loss is not finite."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from pcseg.atomic import write_text_atomic
from pcseg.engine import checkpoint as ckpt
from pcseg.engine import distributed as dist_utils
from pcseg.engine.config import RESUME_FREE, Config, OptimConfig, config_differences, load_config, save_config
from pcseg.engine.ema import EMA
from pcseg.engine.log import RunLogger
from pcseg.engine.sampler import ResumableBatchSampler
from pcseg.engine.schedules import build_scheduler


class TrainingDiverged(RuntimeError):
    """A loss (or the gradient norm) became NaN or infinite; training stopped without writing a checkpoint."""


def build_optimizer(cfg: OptimConfig, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over `params` with the peak learning rate of `cfg`."""
    params = [p for p in params if p.requires_grad]
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but torch sees no CUDA device (use train.device=cpu or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# Settings that name a file whose contents decide what is trained: a resume compares contents, not paths, so a run
# copied or moved with its files resumes; the checkpoint keeps each file's sha256 from the run's start.
FILE_SETTINGS = ("data.budget", "train.init_from")


def _setting(plain: Dict[str, Any], name: str) -> Any:
    section, key = name.split(".")
    return plain.get(section, {}).get(key, "")


def _file_digests(plain: Dict[str, Any]) -> Dict[str, str]:
    """{setting: sha256} of the FILE_SETTINGS of Config.to_dict() `plain` that name an existing file."""
    paths = {name: _setting(plain, name) for name in FILE_SETTINGS}
    return {name: ckpt.file_sha256(path) for name, path in paths.items() if path and Path(path).is_file()}


def _same_file(before: str, now: str, digest: Optional[str], legacy: bool) -> bool:
    """Whether setting values `before` (the checkpoint's) and `now` name the same contents: `now` is a file with the
    sha256 `digest` saved at the run's start (a file gone from the same path counts as unchanged); without a digest,
    the same value, or, for a checkpoint written before pcseg saved digests (`legacy`), files with the same bytes."""
    if digest is None:
        return before == now or (legacy and bool(before and now) and Path(before).is_file() and Path(now).is_file()
                                 and Path(before).read_bytes() == Path(now).read_bytes())
    if not Path(now).is_file():
        return before == now
    return ckpt.file_sha256(now) == digest


class Trainer:
    """Trains `method` (an nn.Module whose forward(batch) returns a dict of scalar losses) on `train_set`.

    train_set    torch Dataset indexed by (index, epoch) keys (see ResumableBatchSampler) -> one sample
    collate_fn   list of samples -> PointBatch
    evaluate     optional callable(module, save_dir=None) -> metrics dict with 'miou' (run every train.eval_every
                 steps and at the end on every rank; it reduces over ranks itself); save_dir is
                 `<train.out_dir>/predictions` with eval.save_predictions
    extra_state  stored in every checkpoint under 'meta' (class names, input channels, ...)

    Checkpoints go to `<train.out_dir>/last.pt`; logs to `log.csv` and `tb/`; the resolved config to
    `config.yaml`. Build the method after seeding (`seed_everything`) so initial weights follow train.seed.
    """

    def __init__(self, cfg: Config, method: nn.Module, train_set: torch.utils.data.Dataset,
                 collate_fn: Callable[[list], Any], evaluate: Optional[Callable[[nn.Module], Dict]] = None,
                 extra_state: Optional[Dict[str, Any]] = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.train.device)
        distributed = dist_utils.init_from_env(self.device.type)
        self.rank, self.world_size = dist_utils.rank(), dist_utils.world_size()
        if self.device.type == "cuda" and distributed:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.out_dir = Path(cfg.train.out_dir)
        self.method = method.to(self.device)
        self.model: nn.Module = self.method
        if distributed:  # batch-norm statistics stay per process (pcseg's BatchNorm acts on SparseTensors)
            self.model = nn.parallel.DistributedDataParallel(
                self.method, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = build_optimizer(cfg.optim, list(self.method.parameters()))
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.train.steps)
        self.amp = cfg.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ema = EMA(self.method, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
        self.sampler = ResumableBatchSampler(len(train_set), cfg.data.batch_size, cfg.train.seed,
                                             self.rank, self.world_size)
        self.loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=self.sampler, collate_fn=collate_fn, num_workers=cfg.data.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            # its own generator: a new epoch's iterator must not draw from the global RNG (exact resume)
            generator=torch.Generator().manual_seed(cfg.train.seed))
        self.evaluate = evaluate
        self.extra_state = dict(extra_state or {})
        self.step = 0
        self.file_digests: Dict[str, str] = {}  # sha256 of the FILE_SETTINGS files at the run's start
        self.last_checkpoint_step: Optional[int] = None
        self.history: List[Dict[str, float]] = []  # every log row of this process (loss averages, lr, eval)

    # ------------------------------------------------------------------------------------------------ state

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "last.pt"

    def state_dict(self) -> Dict[str, Any]:
        rng = ckpt.rng_state()
        if self.world_size > 1:
            states: List[Any] = [None] * self.world_size
            torch.distributed.all_gather_object(states, rng)
        else:
            states = [rng]
        return {
            "model": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": states,
            "step": self.step,
            "epoch": self.step // len(self.sampler),
            "config": self.cfg.to_dict(),
            "file_sha256": self.file_digests,
            "meta": self.extra_state,
        }

    def save_checkpoint(self) -> None:
        state = self.state_dict()  # collective under DDP: every rank calls it
        if self.rank == 0:
            ckpt.save_atomic(state, self.checkpoint_path)
        self.last_checkpoint_step = self.step
        dist_utils.barrier()

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything saved by `save_checkpoint`, so training continues as if never stopped."""
        state = ckpt.load(path)
        changed = self._resume_differences(state) if state.get("config") is not None else []
        if changed:
            raise ckpt.CheckpointError(
                f"cannot resume {path}: it was trained with other settings (checkpoint -> now: {'; '.join(changed)}). "
                "Resume with the settings it was trained with, or train into another train.out_dir")
        ckpt.load_model_state(self.method, state["model"], source=str(path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state.get("ema") is None:
                raise ckpt.CheckpointError(f"{path} has no EMA weights but train.ema_decay > 0")
            self.ema.load_state_dict(state["ema"])
        rng = state["rng"]
        ckpt.set_rng_state(rng[self.rank] if len(rng) == self.world_size else rng[0])
        self.step = int(state["step"])
        self.file_digests = dict(state.get("file_sha256") or _file_digests(self.cfg.to_dict()))
        self.last_checkpoint_step = self.step
        if self.step > self.cfg.train.steps:
            raise ckpt.CheckpointError(f"{path} is at step {self.step}, beyond train.steps={self.cfg.train.steps}")

    def init_weights(self, path: str | Path) -> None:
        """Start from the model weights of checkpoint `path` (train.init_from). The method's step counters (the
        buffers it names in `step_buffers`) keep their fresh values, so schedules inside the method restart too. A
        checkpoint of another method gives its segmentation network (`method.load_network`: backbone and head)."""
        if not Path(path).is_file():
            raise ckpt.CheckpointError(f"train.init_from: checkpoint not found: {path}")
        state = ckpt.load(path)
        weights = dict(state["model"])
        trained = ((state.get("config") or {}).get("method") or {}).get("name", self.cfg.method.name)
        if trained != self.cfg.method.name:  # another method's checkpoint: its backbone + head start this one
            if trained == "slidr" or not hasattr(self.method, "load_network"):
                hint = " (a SLidR backbone goes through `pcseg finetune --pretrained`)" if trained == "slidr" else ""
                raise ckpt.CheckpointError(f"train.init_from {path}: a {trained} checkpoint cannot start method "
                                           f"{self.cfg.method.name}{hint}")
            self.method.load_network(weights, source=f"train.init_from {path} (method {trained})")
        else:
            fresh = self.method.state_dict()
            for name in getattr(self.method, "step_buffers", ()):
                weights[name] = fresh[name]
            ckpt.load_model_state(self.method, weights, source=f"train.init_from {path}")
        self.restart_ema()

    def restart_ema(self) -> None:
        """After new weights were loaded into the method: the average (train.ema_decay) starts from them."""
        if self.ema is not None:
            self.ema = EMA(self.method, self.cfg.train.ema_decay)

    def _resume_differences(self, state: Dict[str, Any]) -> List[str]:
        """The settings (beyond RESUME_FREE) of checkpoint `state`'s config that this trainer's config changes; the
        FILE_SETTINGS count by their files' contents."""
        saved, current = state["config"], self.cfg.to_dict()
        digests, edited = state.get("file_sha256"), []
        for name in FILE_SETTINGS:
            before, now = _setting(saved, name), _setting(current, name)
            if _same_file(before, now, (digests or {}).get(name), legacy=digests is None):
                section, key = name.split(".")
                current[section][key] = before
            elif before == now:
                edited.append(f"{name}: {now} (its contents changed since the run started)")
        budgets = (_setting(saved, "data.budget"), current["data"]["budget"])
        if not any(":" in b for b in budgets):  # budget_seed draws the points of a sampler spec (ratio:0.001) only
            current["data"]["budget_seed"] = saved.get("data", {}).get("budget_seed")
        defaults = load_config(overrides=[f"method.name={self.cfg.method.name}"]).to_dict()
        return edited + config_differences(saved, current, RESUME_FREE, defaults)

    # ------------------------------------------------------------------------------------------------ loop

    def fit(self, resume: Optional[str | Path] = None) -> Dict[str, Any]:
        """Train to `train.steps`; returns {'step', 'losses' (last log row), 'eval' (last metrics or None)}."""
        cfg = self.cfg.train
        if resume is not None:
            self.load_checkpoint(resume)
        else:
            self.file_digests = _file_digests(self.cfg.to_dict())
            if cfg.init_from:
                self.init_weights(cfg.init_from)
        logger = None
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.out_dir / "config.yaml")
            logger = RunLogger(self.out_dir, resume_step=self.step if resume is not None else None)
        progress = _progress(cfg.steps, self.step, enabled=cfg.progress and self.rank == 0)
        sums: Dict[str, float] = {}
        count, tic = 0, time.perf_counter()
        metrics = None
        self.method.train()
        try:
            while self.step < cfg.steps:
                per_epoch = len(self.sampler)
                self.sampler.set_epoch(self.step // per_epoch, self.step % per_epoch)
                for batch in self.loader:
                    values = self.train_step(batch)
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    progress.update(1)
                    last = self.step == cfg.steps
                    if self.step % cfg.log_every == 0 or last:
                        row = {k: v / count for k, v in sums.items()}
                        row = dist_utils.reduce_mean(row, self.device)
                        row["lr"] = self.optimizer.param_groups[0]["lr"]
                        row["sec_per_step"] = (time.perf_counter() - tic) / count
                        self._record(logger, row)
                        progress.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
                        sums, count, tic = {}, 0, time.perf_counter()
                    if self.step % cfg.checkpoint_every == 0 or last:
                        self.save_checkpoint()
                    if self.evaluate is not None and ((cfg.eval_every and self.step % cfg.eval_every == 0)
                                                      or last):
                        metrics = self._run_eval(logger)
                    if last:
                        break
        finally:
            progress.close()
            if logger is not None:
                logger.close()
        if self.rank == 0 and metrics is not None:
            write_text_atomic(self.out_dir / "metrics.json", json.dumps(metrics, indent=2))
        return {"step": self.step, "losses": self.history[-1] if self.history else {}, "eval": metrics}

    def train_step(self, batch: Any) -> Dict[str, float]:
        """One optimizer step on `batch`; returns {'loss': total, <name>: value} as floats."""
        batch = batch.to(self.device, non_blocking=True)
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            losses = self.model(batch)
        if not isinstance(losses, dict) or not losses:
            raise TypeError(f"{type(self.method).__name__}.forward must return a non-empty dict of losses in "
                            f"training mode, got {type(losses).__name__}")
        total = sum(losses.values())
        values = torch.stack([total.detach().float()] + [v.detach().float() for v in losses.values()])
        finite = torch.isfinite(values).all().to(torch.float32)
        if self.world_size > 1:  # every rank must agree before the collective backward
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        numbers = values.tolist()
        if finite.item() < 1:
            self._diverged(", ".join(f"{k}={v:.4g}" for k, v in zip(losses, numbers[1:])))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.method.parameters(), self.cfg.optim.grad_clip)
            if not self.amp and not math.isfinite(float(norm)):  # under AMP the scaler skips such steps
                self._diverged(f"gradient norm={float(norm):.4g}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.method)
        self.step += 1
        return {"loss": numbers[0], **dict(zip(losses, numbers[1:]))}

    def _diverged(self, what: str) -> None:
        kept = (f"the last good checkpoint {self.checkpoint_path} (step {self.last_checkpoint_step}) is kept"
                if self.last_checkpoint_step is not None else "no checkpoint had been written yet")
        raise TrainingDiverged(f"training stopped at step {self.step + 1}: non-finite value ({what}); {kept}. "
                               "Lower optim.lr, set optim.grad_clip, or check the data.")

    def _run_eval(self, logger: Optional[RunLogger]) -> Dict[str, Any]:
        use_ema = self.cfg.eval.use_ema and self.ema is not None
        module = self.ema.module if use_ema else self.method
        if self.cfg.eval.save_predictions:  # the evaluator's scene files, overwritten by each evaluation
            metrics = self.evaluate(module, save_dir=self.out_dir / "predictions")
        else:
            metrics = self.evaluate(module)
        self.method.train()
        self._record(logger, {"val/miou": metrics["miou"], "val/acc": metrics["acc"]})
        return metrics

    def _record(self, logger: Optional[RunLogger], row: Dict[str, float]) -> None:
        self.history.append({"step": self.step, **row})
        if logger is not None:
            logger.log(self.step, row)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step", dynamic_ncols=True)
