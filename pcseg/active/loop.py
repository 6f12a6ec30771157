"""`pcseg active-loop`: the active-learning simulation with a ground-truth oracle.

    round 0: a random initial budget (`active.initial`) -> train -> evaluate
    round r: select `active.round_ratio` of all training points (or `active.round_points`) with the model of
             round r-1 -> the oracle labels them (the dataset's ground truth) -> train -> evaluate
Each round trains from scratch, or with `active.warm_start` from round r-1's final weights (student and teacher).

Files under the output folder: `budgets/round_<r>.pt` (each a NEW file: the previous round's points plus the
picks), `round_<r>/` (the trainer's checkpoint, logs, metrics.json), `rounds.json` (the per-round table). A rerun
with the same folder continues: existing budget files are kept, an interrupted training resumes from its checkpoint
and a finished one is only evaluated again.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

from pcseg.active.config import ActiveConfig
from pcseg.active.select import scene_point_counts, select_points, write_round
from pcseg.active.uncertainty import MODEL_FREE
from pcseg.atomic import write_text_atomic
from pcseg.engine.config import Config, load_config
from pcseg.weak.budget import read_budget, sample_budget, write_budget


@dataclass
class RoundResult:
    """One row of the per-round table."""

    round: int
    labeled_points: int
    total_points: int
    miou: float
    acc: float
    train_seconds: float
    select_seconds: float
    budget_file: str
    selection: str

    @property
    def fraction(self) -> float:
        return self.labeled_points / max(self.total_points, 1)


def round_config(cfg: Config, budget_file: Path, out_dir: Path, init_from: Optional[Path] = None) -> Config:
    """`cfg` training on `budget_file` into `out_dir`, from the weights of checkpoint `init_from` when given."""
    overrides = [f"data.budget={budget_file}", f"train.out_dir={out_dir}"]
    if init_from is not None:
        overrides.append(f"train.init_from={init_from}")
    return load_config(None, overrides, base=cfg.to_dict())


def train_run(cfg: Config, sources: Dict[str, object]):
    """(trained Trainer, metrics or None): resumes from the round's checkpoint when one exists."""
    from pcseg.engine.build import build_trainer

    trainer = build_trainer(cfg, sources)
    resume = trainer.checkpoint_path if trainer.checkpoint_path.is_file() else None
    metrics = trainer.fit(resume=resume)["eval"]
    if metrics is None and trainer.evaluate is not None:  # resumed at the last step: evaluate once more
        metrics = trainer.evaluate(trainer.method)
    return trainer, metrics


def run_active_loop(cfg: Config, active: ActiveConfig, out_dir: Union[str, Path], progress: bool = True,
                    sources: Optional[Dict[str, object]] = None,
                    report: Callable[[str], None] = print) -> List[RoundResult]:
    """Run (or resume) the simulation; returns one RoundResult per round and writes `<out_dir>/rounds.json`.

    cfg       engine config of every round's training (its data.budget and train.out_dir are replaced)
    active    selection and loop settings
    sources   optional {split: scene source} reused across rounds (generated scenes are made once)
    report    called with each finished round's table line
    """
    from pcseg.engine.build import build_dataset, build_source
    from pcseg.engine.trainer import resolve_device

    active.check()
    out_dir = Path(out_dir)
    budgets = out_dir / "budgets"
    sources = dict(sources or {})
    for split in (cfg.data.train_split, cfg.data.val_split):
        if split not in sources:
            sources[split] = build_source(cfg, split)
    train_source = sources[cfg.data.train_split]
    total = sum(scene_point_counts(train_source).values())
    first = budgets / "round_0.pt"
    if not first.exists():
        write_budget(sample_budget(train_source, active.initial, active.seed), first)
    rows: List[RoundResult] = []
    report(format_header())
    for r in range(active.rounds + 1):
        budget_file = budgets / f"round_{r}.pt"
        init_from = out_dir / f"round_{r - 1}" / "last.pt" if active.warm_start and r > 0 else None
        run_cfg = round_config(cfg, budget_file, out_dir / f"round_{r}", init_from)
        tic = time.perf_counter()
        trainer, metrics = train_run(run_cfg, sources)
        train_seconds = time.perf_counter() - tic
        previous = read_budget(budget_file)
        summary, select_seconds = "", 0.0
        following = budgets / f"round_{r + 1}.pt"
        if r < active.rounds and not following.exists():
            tic = time.perf_counter()
            dataset = build_dataset(run_cfg, run_cfg.data.train_split, False, train_source)
            selection = select_points(
                train_source, active, previous,
                ratio=None if active.round_points else active.round_ratio,
                num_points=active.round_points or None,
                method=None if active.strategy in MODEL_FREE else trainer.method,
                voxel_size=dataset.voxel_size, features=dataset.features,
                device=resolve_device(run_cfg.train.device), labelable_only=True, progress=progress)
            write_round(previous, selection.picks, following)
            summary, select_seconds = selection.summary(), time.perf_counter() - tic
        row = RoundResult(
            round=r, labeled_points=int(sum(len(v) for v in previous.values())), total_points=total,
            miou=float(metrics["miou"]) if metrics else math.nan, acc=float(metrics["acc"]) if metrics else math.nan,
            train_seconds=train_seconds, select_seconds=select_seconds, budget_file=str(budget_file),
            selection=summary)
        rows.append(row)
        report(format_row(row))
        write_text_atomic(out_dir / "rounds.json", json.dumps([asdict(x) for x in rows], indent=2))
    return rows


def format_header() -> str:
    return f"{'round':>5} {'labeled points':>16} {'fraction':>9} {'mIoU':>6} {'acc':>6} {'train':>7} {'select':>7}"


def format_row(row: RoundResult) -> str:
    return (f"{row.round:>5} {row.labeled_points:>16,} {100 * row.fraction:>8.3f}% {100 * row.miou:>6.1f} "
            f"{100 * row.acc:>6.1f} {row.train_seconds:>6.0f}s {row.select_seconds:>6.0f}s")


def format_rounds(rows: Sequence[RoundResult]) -> str:
    """The per-round table: round, labeled points, fraction of all training points, mIoU, accuracy, times."""
    return "\n".join([format_header()] + [format_row(r) for r in rows])

