"""Kernel maps: literal cases, reference vs brute force, compiled kernels (CPU, CUDA) vs reference, bad input."""
import itertools

import pytest
import torch

from pcseg.ops._ext import extension, has_op
from pcseg.ops.kernel_map import (
    conv_output_shape,
    downsample_kernel_map,
    downsample_kernel_map_reference,
    inverse_kernel_map,
    submanifold_kernel_map,
    submanifold_kernel_map_reference,
)

pytestmark = pytest.mark.filterwarnings("ignore:pcseg.ops.kernel_map")

DEVICES = ["cpu", "cuda"]


def need_kernel(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if not has_op("kernel_map_submanifold", device):
        pytest.skip(f"pcseg._C is not built with {device} kernel maps (pip install --no-build-isolation -e .)")


def pairs(kmap):
    """Per offset list of (in, out) pairs."""
    out, start = [], 0
    for c in kmap.counts.tolist():
        out.append(list(zip(kmap.in_idx[start : start + c].tolist(), kmap.out_idx[start : start + c].tolist())))
        start += c
    return out


def random_coords(batch: int, shape, density: float, seed: int, shuffle: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coords = (torch.rand(batch, *shape, generator=g) < density).nonzero().to(torch.int32)
    if shuffle:
        coords = coords[torch.randperm(len(coords), generator=g)]
    return coords.contiguous()


def test_submanifold_literal():
    coords = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.int32)
    kmap = submanifold_kernel_map(coords, 3)
    expected = {0: [(0, 2)], 1: [(1, 2)], 12: [(0, 1)], 13: [(0, 0), (1, 1), (2, 2), (3, 3)], 14: [(1, 0)],
                25: [(2, 1)], 26: [(2, 0)]}
    assert pairs(kmap) == [expected.get(k, []) for k in range(27)]
    assert kmap.num_in == kmap.num_out == 4


def test_downsample_literal():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 2, 0, 3], [1, 3, 3, 3]], dtype=torch.int32)
    out_coords, kmap = downsample_kernel_map(coords, (4, 4, 4), kernel_size=2, stride=2)
    assert out_coords.tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [1, 1, 1, 1]]
    assert pairs(kmap) == [[(0, 0)], [(2, 1)], [], [], [], [], [], [(1, 0), (3, 2)]]
    inv = inverse_kernel_map(kmap)
    assert pairs(inv)[7] == [(0, 1), (2, 3)] and (inv.num_in, inv.num_out) == (3, 4)


def brute_submanifold(coords, k):
    pos = {tuple(c): i for i, c in enumerate(coords.tolist())}
    result = []
    for off in itertools.product(*(range(v) for v in k)):
        d = [o - v // 2 for o, v in zip(off, k)]
        result.append([(pos[(c[0], c[1] + d[0], c[2] + d[1], c[3] + d[2])], j)
                       for j, c in enumerate(coords.tolist())
                       if (c[0], c[1] + d[0], c[2] + d[1], c[3] + d[2]) in pos])
    return result


def brute_downsample(coords, shape, k, s, p):
    out_shape = conv_output_shape(shape, k, s, p)
    hits = []
    for kk, off in enumerate(itertools.product(*(range(v) for v in k))):
        for i, c in enumerate(coords.tolist()):
            t = [c[1 + a] + p[a] - off[a] for a in range(3)]
            if all(v >= 0 and v % s[a] == 0 and v // s[a] < out_shape[a] for a, v in enumerate(t)):
                hits.append((kk, i, (c[0], *[v // s[a] for a, v in enumerate(t)])))
    outs = sorted({h[2] for h in hits})
    index = {o: j for j, o in enumerate(outs)}
    result = [[] for _ in range(len(list(itertools.product(*(range(v) for v in k)))))]
    for kk, i, o in hits:
        result[kk].append((i, index[o]))
    return outs, result


@pytest.mark.parametrize("k", [(3, 3, 3), (1, 1, 1), (3, 1, 5)])
def test_submanifold_reference_vs_brute_force(k):
    coords = random_coords(2, (6, 5, 7), 0.3, seed=0)
    assert pairs(submanifold_kernel_map_reference(coords, k)) == brute_submanifold(coords, k)


@pytest.mark.parametrize("k,s,p", [((2, 2, 2), (2, 2, 2), (0, 0, 0)), ((3, 3, 3), (2, 2, 2), (1, 1, 1)),
                                   ((3, 3, 3), (2, 2, 2), (0, 0, 0)), ((2, 3, 1), (1, 2, 3), (1, 0, 0))])
def test_downsample_reference_vs_brute_force(k, s, p):
    shape = (7, 6, 5)
    coords = random_coords(2, shape, 0.25, seed=1)
    out_coords, kmap = downsample_kernel_map_reference(coords, shape, k, s, p)
    outs, expected = brute_downsample(coords, shape, k, s, p)
    assert [tuple(c) for c in out_coords.tolist()] == outs
    assert pairs(kmap) == expected


SIZES = [(1, (1, 1, 1), 1.0), (1, (5, 4, 3), 0.0), (2, (9, 8, 7), 0.2), (3, (12, 5, 9), 0.6), (1, (30, 30, 20), 0.1)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch,shape,density", SIZES)
def test_kernel_matches_reference(device, batch, shape, density):
    need_kernel(device)
    ext = extension()
    coords = random_coords(batch, shape, density, seed=len(shape) + batch).to(device)
    for k in [(3, 3, 3), (1, 1, 1), (5, 3, 1)]:
        ref = submanifold_kernel_map_reference(coords, k)
        got = ext.kernel_map_submanifold(coords, list(k))
        for a, b in zip((ref.in_idx, ref.out_idx, ref.counts), got):
            assert torch.equal(a.cpu(), b.cpu())
    for k, s, p in [((2, 2, 2), (2, 2, 2), (0, 0, 0)), ((3, 3, 3), (2, 2, 2), (1, 1, 1)), ((3, 3, 3), (1, 1, 1), (0, 0, 0)),
                    ((2, 3, 1), (1, 2, 3), (1, 0, 0))]:
        try:
            out_shape = conv_output_shape(shape, k, s, p)
        except ValueError:
            continue
        out_coords, ref = downsample_kernel_map_reference(coords, shape, k, s, p)
        got = ext.kernel_map_downsample(coords, list(k), list(s), list(p), list(out_shape))
        for a, b in zip((out_coords, ref.in_idx, ref.out_idx, ref.counts), got):
            assert torch.equal(a.cpu(), b.cpu())


def test_cpu_kernel_independent_of_threads():
    need_kernel("cpu")
    ext = extension()
    coords = random_coords(2, (20, 20, 10), 0.3, seed=5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ext.kernel_map_submanifold(coords, [3, 3, 3]) + ext.kernel_map_downsample(coords, [3] * 3, [2] * 3, [1] * 3, [10, 10, 5])
        torch.set_num_threads(2)
        two = ext.kernel_map_submanifold(coords, [3, 3, 3]) + ext.kernel_map_downsample(coords, [3] * 3, [2] * 3, [1] * 3, [10, 10, 5])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


@pytest.mark.parametrize("device", DEVICES)
def test_kernel_rejects_duplicates(device):
    need_kernel(device)
    coords = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]], dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match="duplicate"):
        extension().kernel_map_submanifold(coords, [3, 3, 3])


def test_public_functions_check_input():
    good = torch.tensor([[0, 1, 2, 3]], dtype=torch.int32)
    with pytest.raises(ValueError, match="int32"):
        submanifold_kernel_map(good.float())
    with pytest.raises(ValueError, match="non-negative"):
        submanifold_kernel_map(good - 2)
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        submanifold_kernel_map(good[:, :3])
    with pytest.raises(ValueError, match="odd"):
        submanifold_kernel_map(good, 2)
    with pytest.raises(ValueError, match="duplicate"):
        submanifold_kernel_map(torch.cat([good, good]))
    with pytest.raises(ValueError, match="exceed spatial_shape"):
        downsample_kernel_map(good, (2, 2, 2), 2, 2)
    with pytest.raises(ValueError, match="too small"):
        downsample_kernel_map(good, (4, 4, 4), 5, 1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        submanifold_kernel_map([[0, 1, 2, 3]])


def test_empty_and_int64_input():
    empty = torch.zeros(0, 4, dtype=torch.int32)
    kmap = submanifold_kernel_map(empty)
    assert kmap.in_idx.numel() == 0 and kmap.counts.tolist() == [0] * 27
    out_coords, kmap = downsample_kernel_map(empty, (4, 4, 4), 2, 2)
    assert out_coords.shape == (0, 4) and kmap.counts.tolist() == [0] * 8
    coords = random_coords(1, (5, 5, 5), 0.3, seed=3)
    assert pairs(submanifold_kernel_map(coords.long())) == pairs(submanifold_kernel_map_reference(coords, (3, 3, 3)))
