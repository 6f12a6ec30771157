"""Peak memory and speed of `pcseg predict` on one 1M-point scene, with and without the chunk limit.

    python benchmarks/predict.py [--points 1000000] [--max-points 200000] [--model spunet18] [--threads 2]

The scene (four generated rooms side by side, 2 cm voxels as for ScanNet) is written once in pcseg's on-disk
format as a ScanNet split, with a checkpoint of an initialised SpUNet. Each case then runs `predict_split` in its
own subprocess, which reports its own peak resident set size (getrusage ru_maxrss), so the cases cannot inflate
each other's numbers. Prints one row per case and how many points the two cases label alike.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_data(folder: Path, points: int, model: str, voxel: float) -> Path:
    """A preprocessed one-scene ScanNet-like dataset and an initialised checkpoint -> the checkpoint path."""
    import torch

    from pcseg.data import SCANNET_CLASSES, generate_indoor_scene
    from pcseg.data.ondisk import write_meta, write_scene
    from pcseg.data.scene import Scene
    from pcseg.engine.build import build_method
    from pcseg.engine.checkpoint import save_atomic
    from pcseg.engine.config import load_config

    rooms = []
    for seed in range(4):  # a 2 x 2 block of rooms: one large scene
        room = generate_indoor_scene(seed, points=points // 4 + (seed < points % 4))
        shift = np.array([(seed % 2) * 7.5, (seed // 2) * 5.5, 0.0], dtype=np.float32) - room.coord.min(0)
        rooms.append(room.replace(coord=room.coord + shift))
    scene = Scene(coord=np.concatenate([r.coord for r in rooms]), color=np.concatenate([r.color for r in rooms]),
                  label=np.concatenate([r.label for r in rooms]), scene_id="scene0000_00")
    write_scene(scene, folder / "data")
    write_meta(folder / "data", "scannet", SCANNET_CLASSES, {"val": [scene.scene_id]})
    cfg = load_config(None, ["data.dataset=preprocessed", f"data.root={folder / 'data'}", f"data.voxel_size={voxel}",
                             f"model.name={model}", "train.progress=false", "train.device=cpu"])
    torch.manual_seed(0)
    method = build_method(cfg, len(SCANNET_CLASSES), 3)
    path = folder / "init.pt"
    save_atomic({"model": method.state_dict(), "config": cfg.to_dict(), "meta": {"num_classes": 20}}, path)
    return path


def worker(args: argparse.Namespace) -> None:
    """One case in this process: predict the split, print a JSON line with time and peak RSS."""
    import torch

    from pcseg.engine.build import load_checkpoint_config
    from pcseg.engine.predict import predict_split

    torch.set_num_threads(args.threads)
    cfg, state = load_checkpoint_config(args.checkpoint)
    start = time.perf_counter()
    report = predict_split(cfg, state, args.checkpoint, args.out, max_points=args.max_points, overlap=args.overlap,
                           progress=False)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    print(json.dumps({"seconds": seconds, "scenes": report["written"], "points": report["points"],
                      "peak_rss_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the scene")
    parser.add_argument("--max-points", type=int, default=200_000, help="chunk limit of the chunked case")
    parser.add_argument("--overlap", type=float, default=1.0, help="metres of overlap around chunks")
    parser.add_argument("--model", default="spunet18", help="backbone (pcseg.models.MODELS)")
    parser.add_argument("--voxel", type=float, default=0.02, help="voxel size in metres")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="pcseg-bench-predict-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        checkpoint = make_data(folder, args.points, args.model, args.voxel)
        print(f"scene: {args.points:,} points (4 generated rooms, {args.voxel} m voxels), model {args.model}, "
              f"{args.threads} threads; data made in {time.perf_counter() - start:.0f} s")
        rows = []
        for name, limit in (("whole scene", 0), (f"chunks <= {args.max_points:,}", args.max_points)):
            out = folder / f"pred_{limit}"
            command = [sys.executable, __file__, "--worker", "--checkpoint", str(checkpoint), "--out", str(out),
                       "--max-points", str(limit), "--overlap", str(args.overlap), "--threads", str(args.threads)]
            proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                raise SystemExit(f"case {name!r} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((name, result, out / "scene0000_00.txt"))
        print(f"{'case':<22} {'seconds':>8} {'scenes/s':>9} {'peak RSS':>10}")
        for name, r, _ in rows:
            print(f"{name:<22} {r['seconds']:8.1f} {r['scenes'] / r['seconds']:9.3f} {r['peak_rss_mb']:8.0f} MB")
        whole, chunked = (np.array(path.read_text().splitlines(), dtype=np.int64) for _, _, path in rows)
        print(f"points labeled alike by both cases: {100 * float((whole == chunked).mean()):.2f}% "
              f"({len(whole):,} lines per file)")


if __name__ == "__main__":
    main()
