import pytest
import torch

from pcseg.ops import voxelize, voxelize_reference
from pcseg.ops._ext import has_op

needs_kernel = pytest.mark.skipif(not has_op("voxelize", "cpu"), reason="pcseg._C is not built")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def assert_same(a, b):
    for name, x, y in zip(a._fields, a, b):
        assert x.dtype == y.dtype, name
        assert torch.equal(x.cpu(), y.cpu()), name


@pytest.mark.parametrize("impl", [voxelize_reference, pytest.param(voxelize, marks=needs_kernel)])
def test_literal_single_cloud(impl):
    coord = torch.tensor([[0.05, 0.05, 0.05], [0.15, 0.05, 0.05], [0.06, 0.01, 0.09], [-0.05, 0.0, 0.0]])
    vox = impl(coord, 0.1)
    assert vox.grid_coord.tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    assert vox.batch.tolist() == [0, 0, 0]
    assert vox.inverse.tolist() == [1, 2, 1, 0]
    assert vox.counts.tolist() == [1, 2, 1]
    assert vox.grid_coord.dtype == torch.int32


@pytest.mark.parametrize("impl", [voxelize_reference, pytest.param(voxelize, marks=needs_kernel)])
def test_literal_batch_and_anisotropic_size(impl):
    coord = torch.tensor([[5.0, 1.0, 0.0], [0.0, 0.0, 0.0], [5.5, 1.0, 3.0], [7.0, 2.0, 0.5], [1.0, 2.0, 0.0]])
    batch = torch.tensor([1, 0, 1, 1, 0])
    vox = impl(coord, (1.0, 2.0, 0.5), batch)
    # element 0: floors (0,0,0), (1,1,0) -> min (0,0,0); element 1: (5,0,0), (5,0,6), (7,1,1) -> min (5,0,0)
    assert vox.grid_coord.tolist() == [[0, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 6], [2, 1, 1]]
    assert vox.batch.tolist() == [0, 0, 1, 1, 1]
    assert vox.inverse.tolist() == [2, 0, 3, 4, 1]
    assert vox.counts.tolist() == [1, 1, 1, 1, 1]


def random_cloud(n, dtype, batches, seed):
    g = torch.Generator().manual_seed(seed)
    coord = (torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([4.0, 3.0, 1.0]) - 1.5).to(dtype)
    batch = torch.randint(0, batches, (n,), generator=g) if batches else None
    return coord, batch


@needs_kernel
@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000, 30000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batches", [0, 1, 5])
@pytest.mark.parametrize("size", [0.02, 0.3, (0.1, 0.25, 0.05)])
def test_kernel_matches_reference(n, dtype, batches, size):
    coord, batch = random_cloud(n, dtype, batches, seed=n + batches)
    assert_same(voxelize(coord, size, batch), voxelize_reference(coord, size, batch))


@needs_kernel
def test_kernel_wide_extent_and_empty_batch_elements():
    # Extents of ~2^29 voxels per axis need more than 64 key bits; batch element 1 has no points.
    g = torch.Generator().manual_seed(0)
    coord = (torch.rand(500, 3, generator=g, dtype=torch.float64) - 0.5) * 2 ** 29
    coord[:5] = coord[0]  # some shared voxels
    batch = torch.randint(0, 2, (500,), generator=g) * 2
    assert_same(voxelize(coord, 1.0, batch), voxelize_reference(coord, 1.0, batch))


@needs_kernel
def test_kernel_independent_of_thread_count():
    coord, batch = random_cloud(300000, torch.float32, 3, seed=1)  # enough points for 2 threads
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = voxelize(coord, 0.05, batch)
        torch.set_num_threads(2)
        two = voxelize(coord, 0.05, batch)
    finally:
        torch.set_num_threads(threads)
    assert_same(one, two)


def test_voxel_reconstructs_points():
    coord, batch = random_cloud(2000, torch.float32, 2, seed=3)
    vox = voxelize(coord, 0.1, batch)
    assert int(vox.counts.sum()) == 2000
    assert torch.equal(vox.batch[vox.inverse], batch)
    assert torch.equal(torch.bincount(vox.inverse, minlength=len(vox.counts)), vox.counts)
    grid = torch.floor(coord / 0.1).long()
    for b in range(2):
        sel = batch == b
        assert torch.equal(vox.grid_coord[vox.inverse[sel]].long(), grid[sel] - grid[sel].min(0).values)


@needs_cuda
@pytest.mark.parametrize("n", [0, 1, 5000])
def test_cuda_matches_reference(n):
    coord, batch = random_cloud(n, torch.float32, 3, seed=n)
    out = voxelize(coord.cuda(), 0.05, batch.cuda())
    assert out.inverse.is_cuda
    assert_same(out, voxelize_reference(coord, 0.05, batch))


@pytest.mark.parametrize(
    "coord, size, batch, match",
    [
        (torch.tensor([[0.0, float("nan"), 0.0]]), 0.1, None, "coord contains NaN or inf"),
        (torch.tensor([[0.0, float("inf"), 0.0]]), 0.1, None, "coord contains NaN or inf"),
        (torch.zeros(2, 3), 0.0, None, "voxel_size must be finite and > 0"),
        (torch.zeros(2, 3), -0.1, None, "voxel_size must be finite and > 0"),
        (torch.zeros(2, 3), float("nan"), None, "voxel_size must be finite and > 0"),
        (torch.zeros(2, 3), (0.1, 0.1), None, "voxel_size must be a number or 3 numbers"),
        (torch.zeros(2, 3, dtype=torch.int64), 0.1, None, "coord must be float32 or float64"),
        (torch.zeros(2, 2), 0.1, None, r"coord must have shape \(N, 3\)"),
        (torch.zeros(2, 3), 0.1, torch.zeros(3, dtype=torch.int64), r"batch must have shape \(2,\)"),
        (torch.zeros(2, 3), 0.1, torch.zeros(2, dtype=torch.int32), "batch must be int64"),
        (torch.zeros(2, 3), 0.1, torch.tensor([0, -1]), "batch must be >= 0"),
        (torch.full((2, 3), 1e6), 1e-6, None, "coord / voxel_size reaches"),
    ],
)
@pytest.mark.parametrize("impl", [voxelize, voxelize_reference])
def test_bad_input(impl, coord, size, batch, match):
    with pytest.raises(ValueError, match=match):
        impl(coord, size, batch)


def test_not_a_tensor():
    with pytest.raises(TypeError, match="coord must be a torch.Tensor"):
        voxelize([[0.0, 0.0, 0.0]], 0.1)
