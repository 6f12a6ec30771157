"""2D branch benchmark on the embedded synthetic shapes (and the point-cloud few-shot routine on synthetic rooms).

    python benchmarks/twod.py [--seeds 3] [--threads 2] [--quick] [--no-points] [--out results.json]

Prints one table:
1. Weak supervision from image-level labels: mIoU of the CAM pseudo masks against the true masks (training
   images; pixels between the two thresholds count as background), and mIoU on held-out images of the
   segmentation head trained on those pseudo masks (`pcseg.methods.cam.CAMSegmentation`, 500 classifier steps +
   300 segmentation steps, batch 16, 32x32 images).
2. Few-shot segmentation (`pcseg.methods.fewshot.FewShotSegmentation`): trained on 1-way 1-shot episodes of the
   base classes 1-4, tested on 1-way episodes of the novel classes 5-8 (other images, other seed). Mean IoU over
   the novel classes (TP, FP, FN summed over 400 episodes) for 1-shot and 5-shot, with and without the prototype
   alignment loss. Episodes are nested, so 1-shot and 5-shot see the same queries and the 5-shot support extends
   the 1-shot one. Each setting is trained from `--seeds` seeds: mean and standard deviation over them.
3. The same few-shot routine on points (`PointFewShot`, a point MLP over colour, normal and height): synthetic rooms,
   base classes floor..table, novel classes chair / cabinet / bookshelf, 20 labelled points per class in each
   support scene.
Every training run goes through the engine's Trainer (AdamW, linear decay, CPU).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

from pcseg.atomic import write_text_atomic
from pcseg.data2d import (
    EpisodeDataset, EpisodeSampler, SyntheticShapes2D, TrainImages, class_index_from_labels, collate_images,
    single_item,
)
from pcseg.engine.config import Config
from pcseg.engine.trainer import Trainer
from pcseg.methods.base import MethodConfig
from pcseg.methods.cam import CAMSegmentation, evaluate_segmentation
from pcseg.methods.fewshot import (
    FewShotSegmentation, PointEpisodeDataset, PointFewShot, PointMLP, evaluate_fewshot, evaluate_point_fewshot,
)
from pcseg.models2d import UNet2d

BASE, NOVEL = (1, 2, 3, 4), (5, 6, 7, 8)
CHANNELS = (16, 32, 64)


def train(method: torch.nn.Module, train_set, collate_fn, steps: int, batch_size: int, lr: float, seed: int,
          out_dir: Path) -> None:
    """Train `method` with the engine's Trainer (AdamW, linear decay, CPU, quiet)."""
    cfg = Config()
    if isinstance(getattr(method, "cfg", None), MethodConfig):
        cfg.method = method.cfg
    cfg.data.batch_size, cfg.data.num_workers = batch_size, 0
    cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay = "adamw", lr, 1e-4
    cfg.schedule.name, cfg.schedule.power = "poly", 1.0
    cfg.train.steps, cfg.train.seed, cfg.train.device, cfg.train.progress = steps, seed, "cpu", False
    cfg.train.log_every, cfg.train.checkpoint_every, cfg.train.out_dir = max(steps // 4, 1), steps, str(out_dir)
    Trainer(cfg, method, train_set, collate_fn).fit()


def cam_rows(args, work: Path) -> List[List[str]]:
    train_set = SyntheticShapes2D(args.images, size=32, seed=0)
    val_set = SyntheticShapes2D(100, size=32, seed=1)
    torch.manual_seed(0)
    cfg = CAMSegmentation.Config(cls_steps=args.cls_steps)
    method = CAMSegmentation(UNet2d(channels=CHANNELS), train_set.num_classes, cfg)
    tic = time.perf_counter()
    train(method, TrainImages(train_set), collate_images, args.cls_steps + args.seg_steps, 16, 2e-3, 0, work / "cam")
    method.eval()
    pseudo = evaluate_segmentation(method.pseudo_masks, train_set, train_set.num_classes, train_set.class_names)
    seg = evaluate_segmentation(method.predict, val_set, val_set.num_classes, val_set.class_names)
    seconds = time.perf_counter() - tic
    return [["CAM pseudo masks vs true masks (train images)", f"{100 * pseudo['miou']:.1f}", "", f"{seconds:.0f}"],
            ["segmentation trained on the pseudo masks (val)", f"{100 * seg['miou']:.1f}", "", ""]]


def fewshot_rows(args, work: Path) -> List[List[str]]:
    base = SyntheticShapes2D(args.images, size=32, classes=BASE, seed=0)
    novel = SyntheticShapes2D(300, size=32, classes=NOVEL, seed=2)
    base_index = class_index_from_labels([base[i].label for i in range(len(base))], base.min_pixels)
    novel_index = class_index_from_labels([novel[i].label for i in range(len(novel))], novel.min_pixels)
    rows = []
    for align in (0.0, 1.0):
        scores: Dict[int, List[float]] = {1: [], 5: []}
        tic = time.perf_counter()
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            cfg = FewShotSegmentation.Config(n_way=1, k_shot=1, n_query=2, align_weight=align)
            method = FewShotSegmentation(UNet2d(channels=CHANNELS), base.num_classes, cfg)
            sampler = EpisodeSampler(base_index, BASE, cfg.n_way, cfg.k_shot, cfg.n_query, seed=seed)
            episodes = EpisodeDataset(base, sampler, num_episodes=args.fs_steps)
            train(method, episodes, single_item, args.fs_steps, 1, 2e-3, seed, work / f"fs_{align}_{seed}")
            for k in (1, 5):
                result = evaluate_fewshot(method, novel, novel_index, NOVEL, k_shot=k, num_episodes=args.episodes)
                scores[k].append(100 * result["miou"])
        seconds = time.perf_counter() - tic
        name = f"few-shot 2D, {'with' if align else 'without'} alignment loss"
        rows.append([name + ", 1-shot", _mean_std(scores[1]), _per_seed(scores[1]), f"{seconds:.0f}"])
        rows.append([name + ", 5-shot", _mean_std(scores[5]), _per_seed(scores[5]), ""])
    return rows


def point_rows(args, work: Path) -> List[List[str]]:
    from pcseg.data.synthetic_indoor import INDOOR_CLASSES, generate_indoor_scene

    tic = time.perf_counter()
    scenes = [generate_indoor_scene((7, i), points=args.points) for i in range(args.scenes)]
    index = class_index_from_labels([s.label for s in scenes], 50)
    base = [INDOOR_CLASSES.index(n) for n in ("floor", "wall", "ceiling", "door", "window", "table")]
    novel = [INDOOR_CLASSES.index(n) for n in ("chair", "cabinet", "bookshelf")]
    base = [c for c in base if len(index.get(c, [])) >= 2]  # 1 support + 1 query scene
    novel = [c for c in novel if len(index.get(c, [])) >= 6]  # 5 support + 1 query scenes
    rows = []
    for align in (0.0, 1.0):
        scores: Dict[int, List[float]] = {1: [], 5: []}
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            method = PointFewShot(PointMLP(), align_weight=align)
            episodes = PointEpisodeDataset(scenes, EpisodeSampler(index, base, 1, 1, 1, seed=seed), args.fs_steps)
            train(method, episodes, single_item, args.fs_steps // 2, 1, 2e-3, seed, work / f"pt_{align}_{seed}")
            for k in (1, 5):
                result = evaluate_point_fewshot(method, scenes, index, novel, k_shot=k, num_episodes=args.episodes // 4)
                scores[k].append(100 * result["miou"])
        name = f"few-shot points, {'with' if align else 'without'} alignment"
        rows.append([name + ", 1-shot", _mean_std(scores[1]), _per_seed(scores[1]),
                     f"{time.perf_counter() - tic:.0f}" if align else ""])
        rows.append([name + ", 5-shot", _mean_std(scores[5]), _per_seed(scores[5]), ""])
    return rows


def _mean_std(values: Sequence[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def _per_seed(values: Sequence[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)


def format_table(rows: List[List[str]]) -> str:
    head = ["setting", "mIoU %", "per seed", "seconds"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per few-shot setting")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--quick", action="store_true", help="a few steps of everything (a smoke run)")
    parser.add_argument("--no-points", action="store_true", help="skip the point-cloud few-shot rows")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.images, args.cls_steps, args.seg_steps, args.fs_steps, args.episodes = 600, 500, 300, 600, 400
    args.scenes, args.points = 24, 4000
    if args.quick:
        args.images, args.cls_steps, args.seg_steps, args.fs_steps, args.episodes = 60, 10, 5, 10, 8
        args.scenes, args.points, args.seeds = 10, 1500, 1
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = cam_rows(args, work) + fewshot_rows(args, work)
        if not args.no_points:
            rows += point_rows(args, work)
    print(format_table(rows))
    print(f"\ntotal {time.perf_counter() - tic:.0f} s, {torch.get_num_threads()} threads")
    if args.out:
        write_text_atomic(args.out, json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
