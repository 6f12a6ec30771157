"""SLidR on the synthetic outdoor scans: does image-to-lidar pre-training help the 3D backbone?

For every seed: pre-train the backbone with SLidR on the training scans (no labels), then
  linear probe      a linear classifier on the frozen backbone, trained on the labels of every training scan
  1%-scan fine-tune the whole network trained on every 100th training scan (SLidR's 1% protocol)
each once from the SLidR weights and once from random initialisation (same seed, same steps), evaluated by
mIoU on held-out scans. The image encoder is trained once, self-supervised (rotation prediction), and frozen.

Scans are generated small (16 beams x 512 azimuth steps, a 192 x 64 camera) and cut to the camera's field of
view, the part of the scan the images supervise, so the whole table takes minutes on two CPU cores.

    python benchmarks/slidr.py                     # the table (about 15 minutes on 2 shared cores)
    python benchmarks/slidr.py --quick             # a smoke run (seconds; meaningless numbers)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

from pcseg.atomic import write_text_atomic
from pcseg.data import SyntheticOutdoor
from pcseg.engine.config import load_config
from pcseg.pretrain import build_finetuner, build_pretrainer, pretrain_image_encoder


class CameraView:
    """Scene source of the points of `source` that its first camera sees (depth > 0, inside the image)."""

    def __init__(self, source) -> None:
        self.source = source
        self.scene_ids, self.class_names, self.num_classes = source.scene_ids, source.class_names, source.num_classes
        self._cache: Dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        if index not in self._cache:
            scene = self.source[index]
            inside = scene.extras["cameras"][0].project(scene.coord)[2]
            self._cache[index] = scene.subset(np.flatnonzero(inside))
        return self._cache[index]


def common(args: argparse.Namespace, seed: int, out: Path) -> List[str]:
    return ["data.dataset=synthetic_outdoor", f"data.voxel_size={args.voxel}", f"data.batch_size={args.batch}",
            "model.name=spunet14", f"model.base_channels={args.width}",
            "model.channels=[" + ",".join(str(args.width * k) for k in (1, 2, 3, 4, 3, 2, 2, 2)) + "]",
            f"model.backend={args.backend}", "optim.name=adamw", "optim.weight_decay=0.01", "schedule.name=onecycle",
            f"train.seed={seed}", f"train.threads={args.threads}", "train.device=cpu", "train.progress=false",
            "train.log_every=50", f"train.out_dir={out}", "eval.batch_size=4", f"data.val_split={args.eval_split}"]


def steps(n: int) -> List[str]:
    return [f"train.steps={n}", f"train.checkpoint_every={n}"]


def run(args: argparse.Namespace) -> Dict[str, object]:
    out = Path(args.out)
    tic = time.perf_counter()
    size = dict(beams=16, azimuth_steps=512, image_size=(192, 64))
    train = CameraView(SyntheticOutdoor(split="train", num_scenes=args.train_scans, **size))
    val = CameraView(SyntheticOutdoor(split=args.eval_split, num_scenes=args.val_scans, **size))
    for source in (train, val):
        for i in range(len(source)):
            source[i]
    generated = time.perf_counter() - tic
    sources = {"train": train, args.eval_split: val}
    encoder = out / "image_encoder.pt"
    slidr = ["method.name=slidr", f"method.image_encoder={encoder}", f"method.superpixel_cache={out / 'superpixels'}",
             f"method.min_points={args.min_points}", f"method.pretext_steps={args.pretext_steps}",
             "method.pretext_batch=8", "method.pretext_crop=48", "method.image_channels=[16,32,64]"]
    cfg = load_config(overrides=common(args, 0, out / "pretrain2d") + slidr)
    pretext = pretrain_image_encoder(cfg, encoder, source=train, progress=False)
    print(f"image encoder: rotation accuracy {100 * pretext['accuracy']:.1f}% ({pretext['seconds']:.0f} s)",
          flush=True)

    results: Dict[str, Dict[str, List[float]]] = {}
    for seed in args.seeds:
        folder = out / f"seed{seed}"
        cfg = load_config(overrides=common(args, seed, folder / "slidr") + slidr + steps(args.pretrain_steps) +
                          [f"optim.lr={args.pretrain_lr}"])
        t = time.perf_counter()
        fit = build_pretrainer(cfg, train).fit()
        print(f"seed {seed}: SLidR pre-training, InfoNCE {fit['losses']['slidr']:.3f} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        pretrained = folder / "slidr" / "last.pt"
        for task, method, every, n, lr, batch in (
                ("linear probe", "linear_probe", 1, args.probe_steps, args.probe_lr, args.batch),
                ("1% scans fine-tune", "supervised", 100, args.finetune_steps, args.finetune_lr, args.finetune_batch)):
            for init, weights in (("random init", None), ("SLidR", pretrained)):
                name = f"{task.replace(' ', '_').replace('%', 'pct')}_{init.split()[0].lower()}"
                cfg = load_config(overrides=common(args, seed, folder / name) + steps(n) +
                                  [f"method.name={method}", f"optim.lr={lr}", f"data.batch_size={batch}"])
                t = time.perf_counter()
                metrics = build_finetuner(cfg, weights, every, sources).fit()["eval"]
                results.setdefault(task, {}).setdefault(init, []).append(100 * metrics["miou"])
                print(f"seed {seed}: {task:<19} {init:<12} mIoU {100 * metrics['miou']:5.1f} "
                      f"({time.perf_counter() - t:.0f} s)", flush=True)
    return {"results": results, "seeds": list(args.seeds), "pretext_accuracy": pretext["accuracy"],
            "generation_seconds": generated, "seconds": time.perf_counter() - tic, "settings": vars(args)}


def spread(values: Sequence[float]) -> float:
    """Range over seeds (max - min)."""
    return float(max(values) - min(values))


def table(summary: Dict[str, object]) -> str:
    rows = ["| task | random init | SLidR | gain | gain > spread |", "|---|---|---|---|---|"]
    for task, by_init in summary["results"].items():
        base, ours = by_init["random init"], by_init["SLidR"]
        gain = float(np.mean(ours) - np.mean(base))
        clear = "yes" if gain > max(spread(base), spread(ours)) else "no"
        rows.append(f"| {task} | {np.mean(base):.1f} ± {spread(base) / 2:.1f} | {np.mean(ours):.1f} ± "
                    f"{spread(ours) / 2:.1f} | {gain:+.1f} | {clear} |")
    seeds = ", ".join(str(s) for s in summary["seeds"])
    rows.append(f"\nmIoU (%) on {summary['settings']['val_scans']} held-out scans, mean ± half the range over "
                f"seeds {seeds}; 'gain > spread': the gain of the means exceeds the full range of both columns. "
                f"Per seed: " + "; ".join(f"{task} {init} " + ", ".join(f"{v:.1f}" for v in values)
                                         for task, by_init in summary["results"].items()
                                         for init, values in by_init.items()))
    rows.append(f"Total {summary['seconds'] / 60:.1f} min (generating scans {summary['generation_seconds']:.0f} s).")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench_slidr", help="output folder (checkpoints, results.json)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train-scans", type=int, default=200)
    parser.add_argument("--val-scans", type=int, default=8)
    parser.add_argument("--voxel", type=float, default=0.2)
    parser.add_argument("--width", type=int, default=16, help="stem channels of the SpUNet")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--min-points", type=int, default=5)
    parser.add_argument("--pretext-steps", type=int, default=150)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--pretrain-lr", type=float, default=0.004)
    parser.add_argument("--probe-steps", type=int, default=150)
    parser.add_argument("--probe-lr", type=float, default=0.01)
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--finetune-lr", type=float, default=0.004)
    parser.add_argument("--finetune-batch", type=int, default=2, help="the 1%% split of 200 scans has 2 scans")
    parser.add_argument("--eval-split", default="test", choices=("val", "test"),
                        help="held-out scans of the table (tune on val, report on test)")
    parser.add_argument("--backend", default="auto", choices=("auto", "native", "spconv"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on contended cores)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few steps: checks the script runs")
    args = parser.parse_args()
    if args.quick:
        args.train_scans, args.val_scans, args.pretext_steps = 4, 1, 2
        args.pretrain_steps = args.probe_steps = args.finetune_steps = 2
        args.out = str(Path(args.out) / "quick")
    torch.set_num_threads(args.threads)
    summary = run(args)
    text = table(summary)
    print("\n" + text)
    write_text_atomic(Path(args.out) / "results.json", json.dumps(summary, indent=2, default=str))
    write_text_atomic(Path(args.out) / "table.md", text + "\n")


if __name__ == "__main__":
    main()
