"""Data benchmark: what the synthetic generators produce, and how fast scenes load.

    python benchmarks/data.py [--scenes 6] [--points 150000] [--workers 2] [--out table.md]

1. Per generator: class histogram (share of points per class), points per scene, seconds per generated scene.
2. Loading throughput: scenes/s of `--points`-point indoor scenes through the default training transforms,
   voxelization (pcseg.ops.voxelize) and collate, batch size 1, in a DataLoader with `--workers` workers. The
   scenes are generated once per worker (cached) before timing, so the figure is the loading pipeline alone.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import List

import numpy as np
import torch

from pcseg.atomic import write_text_atomic
from pcseg.data import (
    INDOOR_CLASSES,
    OUTDOOR_CLASSES,
    PointDataset,
    SyntheticIndoor,
    SyntheticOutdoor,
    default_transforms,
    make_loader,
)


def generator_table(name: str, source, class_names) -> List[str]:
    counts = np.zeros(len(class_names), dtype=np.int64)
    sizes, seconds = [], []
    for i in range(len(source)):
        start = time.perf_counter()
        scene = source[i]
        seconds.append(time.perf_counter() - start)
        sizes.append(scene.num_points)
        counts += np.bincount(scene.label[scene.label >= 0], minlength=len(class_names))
    share = counts / max(counts.sum(), 1)
    present = [sum(1 for i in range(len(source)) if (source[i].label == k).any()) for k in range(len(class_names))]
    lines = [f"## {name}: {len(source)} scenes, points per scene mean {np.mean(sizes):.0f} "
             f"(min {min(sizes)}, max {max(sizes)}), {np.mean(seconds):.3f} s per generated scene",
             "", "| class | share of points | scenes with it |", "|---|---|---|"]
    lines += [f"| {c} | {s:.2%} | {p}/{len(source)} |" for c, s, p in zip(class_names, share, present)]
    return lines + [""]


def throughput(points: int, scenes: int, workers: int, epochs: int, voxel_size: float) -> List[str]:
    source = SyntheticIndoor(split="train", num_scenes=scenes, points_per_scene=points)
    dataset = PointDataset(source, voxel_size=voxel_size, transforms=default_transforms("indoor"))
    loader = make_loader(dataset, batch_size=1, shuffle=True, workers=workers, seed=0)
    start = time.perf_counter()
    for _ in loader:  # warm-up epoch: workers start and generate (cache) their scenes
        pass
    warmup = time.perf_counter() - start
    voxels = []
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            voxels.append(len(batch.grid_coord))
    elapsed = time.perf_counter() - start
    count = epochs * len(dataset)
    return [f"## loading: {points}-point scenes, transforms + voxelize ({voxel_size} m) + collate, "
            f"{workers} workers, torch threads {torch.get_num_threads()}",
            "", "| scenes | seconds | scenes/s | voxels per scene | warm-up (generation) s |", "|---|---|---|---|---|",
            f"| {count} | {elapsed:.2f} | {count / elapsed:.2f} | {np.mean(voxels):.0f} | {warmup:.1f} |", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=6, help="generated scenes per generator")
    parser.add_argument("--points", type=int, default=150000, help="points per scene for the loading benchmark")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes over the loading scenes")
    parser.add_argument("--voxel-size", type=float, default=0.02, help="voxel size of the loading benchmark")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args()

    lines = generator_table("synthetic_indoor (40000 points)",
                            SyntheticIndoor(split="val", num_scenes=args.scenes), INDOOR_CLASSES)
    lines += generator_table("synthetic_outdoor (32 beams x 1024 azimuth steps)",
                             SyntheticOutdoor(split="val", num_scenes=args.scenes), OUTDOOR_CLASSES)
    lines += throughput(args.points, max(args.workers, 1) * 2, args.workers, args.epochs, args.voxel_size)
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()
