"""Speed of the pcseg ops against their baselines, measured side by side in one run (CPU, 2 threads by default).

    python benchmarks/ops.py [--threads 2] [--repeats 5] [--model spunet14]

Rows:
- voxelize, 2 cm voxels of uniform points in 10 x 10 x 3 m, at 100k / 1M / 4M points: the pcseg kernel vs a
  numpy grid sampler in the style of Pointcept's (FNV-1a hash of the grid, argsort, np.unique); per-point cost
  growth from the smallest to the largest size (1.0 = linear).
- kernel map (submanifold 3^3) at 100k voxels: pcseg kernel vs the pure-torch reference.
- SubMConv3d 32 -> 32 forward + backward at 100k voxels: native backend vs spconv ConvAlgo.Native, same weights.
- a whole SpUNet forward + backward at 100k voxels: native vs spconv.
A row whose module or backend is missing prints "not available" with the reason. Times are medians over repeats
of wall-clock seconds; "speed-up" is baseline time / pcseg time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

Row = Tuple[str, str, Optional[float], Optional[float], str]


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of fn() over `repeats` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fnv1a_hash(grid: np.ndarray) -> np.ndarray:
    """64-bit FNV-1a over the (N, 3) int64 grid rows, vectorized over rows."""
    key = np.full(len(grid), 14695981039346656037, dtype=np.uint64)
    for column in grid.astype(np.uint64).T:
        key = (key ^ column) * np.uint64(1099511628211)
    return key


def numpy_voxelize(coord: np.ndarray, voxel_size: float):
    """Unique voxels, point -> voxel inverse and counts with numpy, the way Pointcept's GridSample does it."""
    grid = np.floor(coord / voxel_size).astype(np.int64)
    grid -= grid.min(0)
    key = fnv1a_hash(grid)
    order = np.argsort(key)
    _, first, inverse_sorted, counts = np.unique(key[order], return_index=True, return_inverse=True,
                                                 return_counts=True)
    inverse = np.empty_like(inverse_sorted)
    inverse[order] = inverse_sorted
    return grid[order[first]], inverse, counts


def voxelize_rows(repeats: int) -> Iterator[Row]:
    import torch

    from pcseg.ops import voxelize
    from pcseg.ops._ext import has_op

    if not has_op("voxelize", "cpu"):
        yield ("voxelize 2 cm vs numpy", "1M points", None, None, "not available: pcseg._C is not built")
        return
    sizes = (100_000, 1_000_000, 4_000_000)
    first_per_point = None
    rng = np.random.default_rng(0)
    for n in sizes:
        coord = (rng.random((n, 3), dtype=np.float32) * np.array([10, 10, 3], dtype=np.float32))
        tensor = torch.from_numpy(coord)
        reps = repeats if n <= 1_000_000 else max(1, repeats // 2)
        ours = timed(lambda: voxelize(tensor, 0.02), reps)
        base = timed(lambda: numpy_voxelize(coord, 0.02), reps)
        m_ours, m_base = len(voxelize(tensor, 0.02).counts), len(numpy_voxelize(coord, 0.02)[2])
        note = f"{m_ours} voxels" + ("" if m_ours == m_base else f" (numpy: {m_base}!)")
        if first_per_point is None:
            first_per_point = ours / n
        else:
            note += f"; per-point time x{ours / n / first_per_point:.2f} vs 100k"
        yield ("voxelize 2 cm vs numpy", f"{n // 1000}k points", ours, base, note)


def random_voxels(num: int, shape=(100, 100, 30), seed: int = 0):
    """(num, 4) int32 unique voxels [0, x, y, z] drawn from a dense grid (~1/3 occupied for 100k)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    cells = torch.randperm(shape[0] * shape[1] * shape[2], generator=g)[:num].sort().values
    z, rest = cells % shape[2], cells // shape[2]
    y, x = rest % shape[1], rest // shape[1]
    return torch.stack([torch.zeros_like(x), x, y, z], 1).to(torch.int32).contiguous()


def kernel_map_rows(repeats: int) -> Iterator[Row]:
    try:
        from pcseg.ops.kernel_map import submanifold_kernel_map, submanifold_kernel_map_reference
    except ImportError as error:
        yield ("kernel map subm 3^3 vs torch", "100k voxels", None, None, f"not available: {error}")
        return
    from pcseg.ops._ext import has_op

    if not has_op("kernel_map_submanifold", "cpu"):
        yield ("kernel map subm 3^3 vs torch", "100k voxels", None, None, "not available: no kernel in pcseg._C")
        return
    coords = random_voxels(100_000)
    ours = timed(lambda: submanifold_kernel_map(coords, 3), repeats)
    base = timed(lambda: submanifold_kernel_map_reference(coords, 3), repeats)
    pairs = int(submanifold_kernel_map(coords, 3).counts.sum())
    yield ("kernel map subm 3^3 vs torch", "100k voxels", ours, base, f"{pairs} pairs")


def _conv_step(make_input, module, grad_seed: int = 0):
    """forward + backward of module on a fresh SparseTensor (kernel maps / indice pairs built every time)."""
    import torch

    x = make_input()
    out = module(x)
    grad = torch.randn(out.feats.shape, generator=torch.Generator().manual_seed(grad_seed))
    out.feats.backward(grad)
    return out


def conv_rows(repeats: int, model_name: str) -> Iterator[Row]:
    import torch

    try:
        from pcseg.sparse import SparseTensor, SubMConv3d
        from pcseg.sparse import spconv_backend
    except ImportError as error:
        yield ("SubMConv3d 32->32 fwd+bwd vs spconv", "100k voxels", None, None, f"not available: {error}")
        yield (f"{model_name} fwd+bwd vs spconv", "100k voxels", None, None, f"not available: {error}")
        return
    coords = random_voxels(100_000)
    have_spconv = spconv_backend.available()
    why_not = "not available: spconv is not installed"

    feats32 = torch.randn(len(coords), 32, generator=torch.Generator().manual_seed(1))
    make32 = lambda: SparseTensor(feats32.clone().requires_grad_(True), coords)  # noqa: E731
    native = SubMConv3d(32, 32, 3, backend="native")
    ours = timed(lambda: _conv_step(make32, native), repeats)
    if have_spconv:
        other = SubMConv3d(32, 32, 3, backend="spconv")
        other.load_state_dict(native.state_dict())
        diff = float((_conv_step(make32, native).feats - _conv_step(make32, other).feats).abs().max().detach())
        base = timed(lambda: _conv_step(make32, other), repeats)
        yield ("SubMConv3d 32->32 fwd+bwd vs spconv", "100k voxels", ours, base,
               f"ConvAlgo.Native; max |diff| {diff:.1e}")
    else:
        yield ("SubMConv3d 32->32 fwd+bwd vs spconv", "100k voxels", ours, None, why_not)

    try:
        from pcseg.models import MODELS
    except ImportError as error:
        yield (f"{model_name} fwd+bwd vs spconv", "100k voxels", None, None, f"not available: {error}")
        return
    if model_name not in MODELS:
        yield (f"{model_name} fwd+bwd vs spconv", "100k voxels", None, None,
               f"not available: no model {model_name!r} in pcseg.models.MODELS")
        return
    torch.manual_seed(0)
    feats3 = torch.rand(len(coords), 3, generator=torch.Generator().manual_seed(2))
    make3 = lambda: SparseTensor(feats3.clone().requires_grad_(True), coords)  # noqa: E731
    net_native = MODELS[model_name](3, backend="native")
    net_native.train()
    model_reps = max(1, repeats // 2)
    ours = timed(lambda: _conv_step(make3, net_native), model_reps)
    if have_spconv:
        net_spconv = MODELS[model_name](3, backend="spconv")
        net_spconv.load_state_dict(net_native.state_dict())
        net_spconv.train()
        base = timed(lambda: _conv_step(make3, net_spconv), model_reps)
        params = sum(p.numel() for p in net_native.parameters())
        yield (f"{model_name} fwd+bwd vs spconv", "100k voxels", ours, base,
               f"ConvAlgo.Native; {params / 1e6:.1f}M parameters")
    else:
        yield (f"{model_name} fwd+bwd vs spconv", "100k voxels", ours, None, why_not)


WIDTHS = (38, 12, 11, 11, 9)
HEAD = ("benchmark", "size", "pcseg", "baseline", "speed-up", "notes")


def format_row(row: Row) -> str:
    name, size, ours, base, note = row
    ms = lambda t: "-" if t is None else f"{t * 1e3:.1f} ms"  # noqa: E731
    ratio = "-" if ours is None or base is None else f"{base / ours:.2f}x"
    cells = (name, size, ms(ours), ms(base), ratio)
    return " | ".join(c.ljust(w) for c, w in zip(cells, WIDTHS)) + " | " + note


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="spunet14", help="pcseg.models.MODELS entry for the whole-network row")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch (and spconv) start their thread pools
    warnings.filterwarnings("ignore", category=FutureWarning)  # spconv's import
    import torch

    torch.set_num_threads(args.threads)
    print(f"pcseg ops benchmark, CPU, {args.threads} threads, median wall-clock time of {args.repeats} runs")
    print(" | ".join(h.ljust(w) for h, w in zip(HEAD, WIDTHS)) + " | " + HEAD[-1])
    print("-" * 120)
    sections = (lambda: voxelize_rows(args.repeats), lambda: kernel_map_rows(args.repeats),
                lambda: conv_rows(args.repeats, args.model))
    for section in sections:
        for row in section():
            print(format_row(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
