"""The main job: on the synthetic indoor default, train the SpUNet with full labels and with a 0.1% label budget,
evaluate both on held-out scenes and print one table."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pcseg.atomic import write_text_atomic
from pcseg.engine.config import Config, load_config

# Shared by every run of the demo: a small SpUNet on 8 cm voxels of generated rooms, CPU-friendly (about 0.45 s per
# step on 2 cores). Without augmentation 300 steps reach 0.80 mIoU with full labels; rotation and colour jitter
# would need about three times the steps for the same score on these 24 rooms.
DEMO: Tuple[str, ...] = (
    "data.dataset=synthetic_indoor", "data.voxel_size=0.08", "data.num_train_scenes=24", "data.num_val_scenes=8",
    "data.points_per_scene=40000", "data.batch_size=2", "data.augment=false",
    "model.name=spunet14", "model.base_channels=16", "model.channels=[16,32,64,64,64,32,16,16]",
    "optim.name=adamw", "optim.lr=0.008", "optim.weight_decay=0.01", "schedule.name=onecycle",
    "train.steps=300", "train.log_every=25", "train.checkpoint_every=300", "eval.batch_size=4",
)
# The label-efficiency benchmarks: rooms as dense as a ScanNet v2 scan (about 150k points), so 0.1% is about 150
# labeled points per room as in ScanNet's 0.1% setting, 64 of them (0.1% is about 9,500 labels), and twice the
# demo's steps. With the demo's 24 rooms of 40k points, 0.1% is 933 labels and CE reaches 46% of full supervision
# (ScanNet's CE baseline: 84%); on the dense rooms 300 steps still underfit the sparse labels (CE at 0.1%: 67.4 mIoU
# after 300 steps, 80.4 after 600). The voxels are the same 8 cm, so a step costs about what a demo step costs.
LABEL_EFFICIENCY: Tuple[str, ...] = ("data.points_per_scene=150000", "data.num_train_scenes=64", "train.steps=600",
                                     "train.checkpoint_every=600")
# --quick (the tests): seconds, not a meaningful score.
QUICK: Tuple[str, ...] = (
    "data.num_train_scenes=2", "data.num_val_scenes=1", "data.points_per_scene=4000", "data.batch_size=2",
    "model.channels=[8,16,16,16,16,16,8,8]", "model.base_channels=8", "train.steps=4", "train.log_every=2",
    "train.checkpoint_every=4", "eval.batch_size=1",
)
# (row name, overrides): the default table (about 4 minutes of training and evaluation on 2 CPU cores).
RUNS: List[Tuple[str, Tuple[str, ...]]] = [
    ("supervised full", ("method.name=supervised",)),
    ("supervised 0.1%", ("method.name=supervised", "data.budget=ratio:0.001")),
]
# Method rows added by `pcseg demo --with NAME` (each about 1.6x the time of a supervised row).
EXTRA_RUNS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "cpcm": ("cpcm 0.1%", ("method.name=cpcm", "data.budget=ratio:0.001")),
}


def demo_runs(extra_rows: Sequence[str] = ()) -> List[Tuple[str, Tuple[str, ...]]]:
    """RUNS followed by the EXTRA_RUNS named in `extra_rows` (ValueError naming the valid ones otherwise)."""
    unknown = sorted(set(extra_rows) - set(EXTRA_RUNS))
    if unknown:
        raise ValueError(f"pcseg demo --with: unknown row {', '.join(unknown)}; choose from {', '.join(EXTRA_RUNS)}")
    return list(RUNS) + [EXTRA_RUNS[name] for name in EXTRA_RUNS if name in extra_rows]


def labeled_points(dataset) -> int:
    """Points with a label (!= -1) in a training PointDataset after its budget."""
    if dataset.budget is not None:
        ids = set(dataset.scene_ids)
        return int(sum(len(v) for k, v in dataset.budget.items() if k in ids))
    return int(sum(int((np.asarray(dataset.source[i].label) >= 0).sum()) for i in range(len(dataset))))


def run_demo(out_dir: Path, quick: bool = False, extra: Sequence[str] = (), progress: bool = True,
             runs: Sequence[Tuple[str, Tuple[str, ...]]] = tuple(RUNS),
             sources: Optional[Dict[str, object]] = None) -> List[Dict[str, object]]:
    """Train and evaluate every run; returns one row per run and writes `<out_dir>/results.json`.

    sources  split -> scene source, filled on first use; pass the same dict to several calls with the same data
             settings to generate the rooms once.
    """
    from pcseg.engine.build import build_source, build_trainer

    rows = []
    sources = {} if sources is None else sources
    for name, overrides in runs:
        cfg = run_config(out_dir, name, overrides, quick, extra, progress)
        for split in (cfg.data.train_split, cfg.data.val_split):
            if split not in sources:
                sources[split] = build_source(cfg, split)
        tic = time.perf_counter()
        trainer = build_trainer(cfg, sources)
        result = trainer.fit()
        seconds = time.perf_counter() - tic
        metrics = result["eval"]
        rows.append({"name": name, "labeled_points": labeled_points(trainer.loader.dataset),
                     "total_points": labeled_points_total(trainer.loader.dataset), "miou": metrics["miou"],
                     "acc": metrics["acc"], "iou": metrics["iou"], "seconds": seconds,
                     "png": render_first_scene(sources[cfg.data.val_split], Path(cfg.train.out_dir), quick)})
    write_text_atomic(out_dir / "results.json", json.dumps(rows, indent=2))
    return rows


def run_config(out_dir: Path, name: str, overrides: Sequence[str], quick: bool = False, extra: Sequence[str] = (),
               progress: bool = True) -> Config:
    """The config of the demo run `name` (its folder: `<out_dir>/<name as a file name>`)."""
    slug = name.replace(" ", "_").replace("%", "pct").replace(".", "")
    return load_config(overrides=DEMO + (QUICK if quick else ()) + tuple(overrides) + tuple(extra) + (
        f"train.out_dir={out_dir / slug}", f"train.progress={progress}", "eval.save_predictions=true"))


def render_first_scene(source, run_dir: Path, quick: bool) -> Optional[str]:
    """`<run_dir>/val_scene.png`: the first held-out room from above and from the side, ground truth |
    prediction | errors (red), ceiling hidden. Returns the path, or None (with a note) if rendering failed."""
    from pcseg.vis import get_palette, render_png

    scene = source[0]
    pred_file = run_dir / "predictions" / f"{scene.scene_id}.npy"
    try:
        result = render_png(run_dir / "val_scene.png", scene, pred=np.load(pred_file),
                            palette=get_palette(None, class_names=source.class_names), hide_classes=["ceiling"],
                            panel_size=(240, 180) if quick else (480, 360))
    except Exception as err:  # a picture is a bonus: never lose the trained runs over it
        print(f"[pcseg demo] could not render {run_dir / 'val_scene.png'}: {err}")
        return None
    return str(result.path)


def labeled_points_total(dataset) -> int:
    return int(sum(dataset.source[i].num_points for i in range(len(dataset))))


def format_table(rows: Sequence[Dict[str, object]]) -> str:
    """Method, labeled points (and fraction), mIoU, time; then per-class IoU of each run, in percent."""
    lines = [f"{'method':<22} {'labeled points':>22} {'mIoU':>6} {'acc':>6} {'time':>8}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        frac = r["labeled_points"] / max(r["total_points"], 1)
        labeled = f"{r['labeled_points']:,} ({100 * frac:.2g}%)"
        lines.append(f"{r['name']:<22} {labeled:>22} {100 * r['miou']:6.1f} {100 * r['acc']:6.1f} "
                     f"{r['seconds']:7.0f}s")
    names = list(rows[0]["iou"]) if rows else []
    lines += ["", "per-class IoU (%)", f"{'method':<22} " + " ".join(f"{n[:8]:>8}" for n in names)]
    for r in rows:
        lines.append(f"{r['name']:<22} " + " ".join(
            f"{'-' if v != v else f'{100 * v:.1f}':>8}" for v in r["iou"].values()))
    return "\n".join(lines)
