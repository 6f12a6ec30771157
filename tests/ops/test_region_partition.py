import pytest
import torch

from pcseg.ops._ext import has_op
from pcseg.ops.region_partition import region_partition, region_partition_reference

needs_kernel = pytest.mark.skipif(not has_op("region_partition", "cpu"), reason="pcseg._C is not built")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
IMPLS = [region_partition_reference, pytest.param(region_partition, marks=needs_kernel)]


@pytest.mark.parametrize("impl", IMPLS)
def test_literal_two_by_two(impl):
    # x: 0,1 | 2,3 (pivot 2); y: pivot at sorted[2] = 20; z constant -> every point in z slab 1 (pivot 5 <= 5)
    coord = torch.tensor([[0.0, 10, 5], [1, 30, 5], [2, 20, 5], [3, 0, 5]])
    cell = impl(coord, 2)
    # cell = ix * 4 + iy * 2 + iz
    assert cell.tolist() == [0 * 4 + 0 * 2 + 1, 0 * 4 + 1 * 2 + 1, 1 * 4 + 1 * 2 + 1, 1 * 4 + 0 * 2 + 1]


@pytest.mark.parametrize("impl", IMPLS)
def test_literal_batches_are_partitioned_separately(impl):
    coord = torch.tensor([[0.0, 0, 0], [100, 100, 100], [1, 1, 1], [-5, -5, -5]])
    batch = torch.tensor([0, 1, 0, 1])
    cell = impl(coord, 2, batch)
    assert cell.tolist() == [0, 8 + 7, 7, 8 + 0]


@pytest.mark.parametrize("impl", IMPLS)
def test_balanced_slabs_on_distinct_values(impl):
    g = torch.Generator().manual_seed(0)
    coord = torch.rand(4000, 3, generator=g)
    cell = impl(coord, 4)
    ix = cell // 16
    assert torch.bincount(ix, minlength=4).tolist() == [1000] * 4
    assert int(cell.max()) < 64


@needs_kernel
@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 20000])
@pytest.mark.parametrize("grid_size", [1, 2, 3, 8])
@pytest.mark.parametrize("batches", [0, 1, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_reference(n, grid_size, batches, dtype):
    g = torch.Generator().manual_seed(n * 7 + grid_size)
    coord = (torch.rand(n, 3, generator=g) * 10).round().to(dtype)  # many ties
    coord[: n // 2] += torch.rand(n // 2, 3, generator=g).to(dtype)
    batch = torch.randint(0, batches, (n,), generator=g) if batches else None
    assert torch.equal(region_partition(coord, grid_size, batch), region_partition_reference(coord, grid_size, batch))


@needs_cuda
def test_cuda_matches_reference():
    g = torch.Generator().manual_seed(1)
    coord = torch.rand(5000, 3, generator=g)
    batch = torch.randint(0, 3, (5000,), generator=g)
    out = region_partition(coord.cuda(), 4, batch.cuda())
    assert out.is_cuda
    assert torch.equal(out.cpu(), region_partition_reference(coord, 4, batch))


@pytest.mark.parametrize("impl", [region_partition, region_partition_reference])
@pytest.mark.parametrize(
    "coord, grid_size, batch, error, match",
    [
        (torch.tensor([[0.0, float("nan"), 0]]), 2, None, ValueError, "coord contains NaN or inf"),
        (torch.zeros(2, 3), 0, None, ValueError, "grid_size must be >= 1"),
        (torch.zeros(2, 3), 2.0, None, TypeError, "grid_size must be an int"),
        (torch.zeros(2, 3, dtype=torch.int32), 2, None, ValueError, "coord must be float32 or float64"),
        (torch.zeros(2, 3), 2, torch.zeros(1, dtype=torch.int64), ValueError, r"batch must have shape \(2,\)"),
        (torch.zeros(2, 3), 2, torch.tensor([0, -2]), ValueError, "batch must be >= 0"),
    ],
)
def test_bad_input(impl, coord, grid_size, batch, error, match):
    with pytest.raises(error, match=match):
        impl(coord, grid_size, batch)
