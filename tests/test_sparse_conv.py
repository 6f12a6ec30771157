"""pcseg.sparse: native backend vs dense conv3d, spconv vs native, one weight layout for both, bad input."""
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from pcseg.sparse import (
    BatchNorm,
    DepthwiseSubMConv3d,
    ReLU,
    SparseConv3d,
    SparseInverseConv3d,
    SparseTensor,
    SubMConv3d,
)
from pcseg.sparse import native

HAS_SPCONV = importlib.util.find_spec("spconv") is not None
needs_spconv = pytest.mark.skipif(not HAS_SPCONV, reason="spconv (a CUDA wheel, e.g. spconv-cu126) is not installed")


def random_grid(batch: int, shape, density: float, seed: int) -> torch.Tensor:
    """(M, 4) int32 sorted unique [b, x, y, z] of a random occupancy grid (contiguous)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, *shape, generator=g) < density
    return mask.nonzero().to(torch.int32).contiguous()


def to_dense(feats: torch.Tensor, coords: torch.Tensor, batch: int, shape) -> torch.Tensor:
    """(B, C, X, Y, Z) grid holding feats at coords."""
    out = feats.new_zeros(batch, feats.shape[1], *shape)
    c = coords.long()
    out[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]] = feats
    return out


def at(dense: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    c = coords.long()
    return dense[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]]


def assert_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> None:
    a, b = a.detach(), b.detach()
    scale = b.abs().max().clamp(min=1e-12)
    assert a.shape == b.shape
    assert float((a - b).abs().max() / scale) <= rtol, float((a - b).abs().max() / scale)


def dense_weight(layer) -> torch.Tensor:
    """pcseg (C_out, kx, ky, kz, C_in) weight as a conv3d weight (C_out, C_in, kx, ky, kz)."""
    return layer.weight.detach().permute(0, 4, 1, 2, 3)


SHAPE = (7, 6, 5)


@pytest.fixture(params=[0.0, 2.0], ids=["dense-strategy", "pairs-strategy"])
def strategy(request, monkeypatch):
    """Run the native backend with the im2col strategy (fill >= 0) or the per-offset pairs strategy."""
    monkeypatch.setattr(native, "DENSE_FILL", request.param)
    return request.param


def sparse_input(coords, channels, seed, batch=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(coords.shape[0], channels, generator=g, dtype=dtype).requires_grad_()
    return feats, SparseTensor(feats, coords, SHAPE, batch)


@pytest.mark.parametrize("kernel_size", [3, 1, (3, 1, 5)])
def test_submanifold_matches_conv3d(strategy, kernel_size):
    coords = random_grid(2, SHAPE, 0.3, seed=0)
    feats, x = sparse_input(coords, 3, seed=1)
    conv = SubMConv3d(3, 4, kernel_size, bias=True, backend="native").double()
    y = conv(x)
    assert y.coords is x.coords
    k = conv.kernel_size
    dense_in = to_dense(feats.detach(), coords, 2, SHAPE).requires_grad_()
    w = dense_weight(conv).clone().requires_grad_()
    ref = at(F.conv3d(dense_in, w, conv.bias.detach(), padding=[v // 2 for v in k]), coords)
    assert_close(y.feats, ref)
    grad = torch.randn_like(ref)
    (y.feats * grad).sum().backward()
    (ref * grad).sum().backward()
    assert_close(feats.grad, at(dense_in.grad, coords))
    assert_close(conv.weight.grad.permute(0, 4, 1, 2, 3), w.grad)


@pytest.mark.parametrize("kernel_size,stride,padding", [(2, 2, 0), (3, 2, 0), (3, 2, 1), (3, 1, 0)])
def test_strided_and_inverse_match_dense(strategy, kernel_size, stride, padding):
    coords = random_grid(2, SHAPE, 0.25, seed=2)
    feats, x = sparse_input(coords, 3, seed=3)
    down = SparseConv3d(3, 4, kernel_size, stride, padding, bias=True, indice_key="d", backend="native").double()
    up = SparseInverseConv3d(4, 2, kernel_size, indice_key="d", backend="native").double()
    y = down(x)
    z = up(y)
    dense_in = to_dense(feats.detach(), coords, 2, SHAPE).requires_grad_()
    wd = dense_weight(down).clone().requires_grad_()
    wu = dense_weight(up).permute(1, 0, 2, 3, 4).clone().requires_grad_()  # conv_transpose3d: (C_in, C_out, k...)
    dense_y = F.conv3d(dense_in, wd, down.bias.detach(), stride=stride, padding=padding)
    # active outputs: every site of the output grid that some input reaches, sorted by (b, x, y, z)
    reach = F.conv3d(to_dense(torch.ones(len(coords), 1, dtype=torch.float64), coords, 2, SHAPE),
                     torch.ones(1, 1, kernel_size, kernel_size, kernel_size, dtype=torch.float64),
                     stride=stride, padding=padding)
    assert torch.equal(y.coords, reach[:, 0].nonzero().to(torch.int32))
    assert y.spatial_shape == tuple(dense_y.shape[2:])
    assert_close(y.feats, at(dense_y, y.coords))
    # inverse: transposed conv of the strided output (only active sites), read at the original sites
    mask = to_dense(torch.ones(len(y.coords), 1, dtype=torch.float64), y.coords, 2, y.spatial_shape)
    size = [(n - 1) * stride - 2 * padding + kernel_size for n in dense_y.shape[2:]]
    dense_z = F.conv_transpose3d(dense_y * mask, wu, stride=stride, padding=padding,
                                 output_padding=[max(0, s - t) for s, t in zip(SHAPE, size)])
    dense_z = dense_z[:, :, : SHAPE[0], : SHAPE[1], : SHAPE[2]]
    assert torch.equal(z.coords, coords) and z.spatial_shape == SHAPE
    assert_close(z.feats, at(dense_z, coords))
    grad = torch.randn_like(z.feats)
    (z.feats * grad).sum().backward()
    (at(dense_z, coords) * grad).sum().backward()
    assert_close(feats.grad, at(dense_in.grad, coords))
    assert_close(down.weight.grad.permute(0, 4, 1, 2, 3), wd.grad)
    assert_close(up.weight.grad.permute(4, 0, 1, 2, 3), wu.grad)


def test_depthwise_matches_grouped_conv3d(strategy):
    coords = random_grid(2, SHAPE, 0.3, seed=4)
    feats, x = sparse_input(coords, 5, seed=5)
    conv = DepthwiseSubMConv3d(5, 3, bias=True).double()
    y = conv(x)
    dense_in = to_dense(feats.detach(), coords, 2, SHAPE).requires_grad_()
    w = conv.weight.detach().unsqueeze(1).clone().requires_grad_()
    ref = at(F.conv3d(dense_in, w, conv.bias.detach(), padding=1, groups=5), coords)
    assert_close(y.feats, ref)
    grad = torch.randn_like(ref)
    (y.feats * grad).sum().backward()
    (ref * grad).sum().backward()
    assert_close(feats.grad, at(dense_in.grad, coords))
    assert_close(conv.weight.grad, w.grad[:, 0])


def test_kernel_maps_are_cached_along_the_network():
    coords = random_grid(1, SHAPE, 0.3, seed=6)
    _, x = sparse_input(coords, 2, seed=7, batch=1, dtype=torch.float32)
    a, b = SubMConv3d(2, 2, backend="native"), SubMConv3d(2, 2, backend="native")
    y = b(ReLU()(a(x)))
    assert len(y.cache) == 1 and y.cache is x.cache
    down = SparseConv3d(2, 2, 2, 2, indice_key="d1", backend="native")
    z = SparseInverseConv3d(2, 2, 2, indice_key="d1", backend="native")(b(down(y)))
    assert z.coords is x.coords and len(x.cache) == 3
    with pytest.raises(ValueError, match="already used"):
        down(y)
    with pytest.raises(ValueError, match="kernel_size"):
        SparseInverseConv3d(2, 2, 3, indice_key="d1", backend="native")(down.__class__(2, 2, 2, 2, backend="native")(y))


def test_empty_tensor():
    x = SparseTensor(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, 4, dtype=torch.int32))
    assert x.spatial_shape == (1, 1, 1) and x.batch_size == 0
    net = torch.nn.Sequential(
        SubMConv3d(3, 4, backend="native"), BatchNorm(4), ReLU(),
        SparseConv3d(4, 4, 1, 1, indice_key="e", backend="native"),
        DepthwiseSubMConv3d(4), SparseInverseConv3d(4, 2, 1, indice_key="e", backend="native"),
    )
    y = net(x)
    assert y.feats.shape == (0, 2)
    y.feats.sum().backward()
    assert net[0].weight.grad is not None and float(net[0].weight.grad.abs().sum()) == 0.0


def test_bad_input_is_rejected():
    coords = random_grid(1, SHAPE, 0.3, seed=8)
    feats = torch.randn(len(coords), 2)
    with pytest.raises(ValueError, match="dtype"):
        SparseTensor(feats, coords.float())
    with pytest.raises(ValueError, match="non-negative"):
        SparseTensor(feats, coords - 1)
    with pytest.raises(ValueError, match="rows"):
        SparseTensor(feats[1:], coords)
    with pytest.raises(ValueError, match="floating"):
        SparseTensor(feats.long(), coords)
    with pytest.raises(ValueError, match="spatial_shape"):
        SparseTensor(feats, coords, spatial_shape=(2, 2, 2))
    with pytest.raises(ValueError, match="duplicate"):
        SubMConv3d(2, 2, backend="native")(SparseTensor(torch.randn(2, 2), torch.zeros(2, 4, dtype=torch.int32)))
    with pytest.raises(ValueError, match="channels"):
        SubMConv3d(3, 2, backend="native")(SparseTensor(feats, coords))
    with pytest.raises(ValueError, match="indice_key"):
        SparseInverseConv3d(2, 2, 2, indice_key="missing", backend="native")(SparseTensor(feats, coords))
    with pytest.raises(ValueError, match="backend"):
        SubMConv3d(2, 2, backend="cuda")
