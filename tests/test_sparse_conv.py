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


def sparse_input(coords, channels, seed, batch=2, dtype=torch.float64, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(coords.shape[0], channels, generator=g, dtype=dtype).requires_grad_()
    return feats, SparseTensor(feats, coords, shape, batch)


@pytest.mark.parametrize("kernel_size", [3, 1, (3, 1, 5)])
def test_submanifold_matches_conv3d(kernel_size):
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
def test_strided_and_inverse_match_dense(kernel_size, stride, padding):
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


def test_depthwise_matches_grouped_conv3d():
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
    assert down(y.replace_feature(y.feats * 2)).coords is down(y).coords  # same voxels: the map is reused
    assert len(x.cache) == 3
    with pytest.raises(ValueError, match="already used"):  # one key for two different voxel sets
        SparseConv3d(2, 2, 2, 2, indice_key="d1", backend="native")(down(y))
    with pytest.raises(ValueError, match="kernel_size"):
        SparseInverseConv3d(2, 2, 3, indice_key="d1", backend="native")(down(y))


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


class SmallNet(torch.nn.Module):
    """Every layer kind: submanifold 3x3x3 and 1x1x1, strided k=2 s=2 and k=3 s=2 p=1, both inverses."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        self.a = SubMConv3d(3, 8, 3, bias=True, backend=backend)
        self.b = SubMConv3d(8, 6, 1, backend=backend)
        self.down2 = SparseConv3d(6, 8, 2, 2, indice_key="d2", backend=backend)
        self.down3 = SparseConv3d(6, 8, 3, 2, 1, bias=True, indice_key="d3", backend=backend)
        self.c = SubMConv3d(8, 8, 3, backend=backend)
        self.up2 = SparseInverseConv3d(8, 4, 2, indice_key="d2", backend=backend)
        self.up3 = SparseInverseConv3d(8, 4, 3, indice_key="d3", backend=backend)

    def forward(self, x):
        h = self.b(self.a(x))
        d2, d3 = self.c(self.down2(h)), self.down3(h)
        return [h, d2, d3, self.up2(d2), self.up3(d3)]


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def run_net(net, coords, seed):
    feats, x = sparse_input(coords, 3, seed=seed, dtype=torch.float32)
    outs = net(x)
    g = torch.Generator().manual_seed(seed + 1)
    sum((o.feats * torch.randn(o.feats.shape, generator=g)).sum() for o in outs).backward()
    return outs, feats.grad, {n: p.grad for n, p in net.named_parameters()}


@needs_spconv
def test_spconv_matches_native(two_threads):
    coords = random_grid(2, SHAPE, 0.35, seed=9)
    native_net = SmallNet("native")
    spconv_net = SmallNet("spconv")
    spconv_net.load_state_dict(native_net.state_dict())
    outs_n, grad_n, pgrad_n = run_net(native_net, coords, seed=10)
    outs_s, grad_s, pgrad_s = run_net(spconv_net, coords, seed=10)
    for a, b in zip(outs_s, outs_n):
        assert torch.equal(a.coords, b.coords) and a.spatial_shape == b.spatial_shape
        assert_close(a.feats, b.feats)
    assert_close(grad_s, grad_n)
    for name in pgrad_n:
        assert_close(pgrad_s[name], pgrad_n[name])


@needs_spconv
@pytest.mark.parametrize("saved,loaded", [("native", "spconv"), ("spconv", "native")])
def test_checkpoint_moves_between_backends(tmp_path, saved, loaded):
    coords = random_grid(2, SHAPE, 0.3, seed=11)
    torch.manual_seed(0)
    source = SmallNet(saved)
    torch.save(source.state_dict(), tmp_path / "net.pt")
    target = SmallNet(loaded)
    target.load_state_dict(torch.load(tmp_path / "net.pt"))
    for a, b in zip(source(sparse_input(coords, 3, 12, dtype=torch.float32)[1]),
                    target(sparse_input(coords, 3, 12, dtype=torch.float32)[1])):
        assert torch.equal(a.coords, b.coords)
        assert_close(a.feats, b.feats)


def model_run(net, coords):
    feats, x = sparse_input(coords, 3, seed=15, dtype=torch.float32, shape=None)
    y = net(x).feats
    y.square().sum().backward()
    return y, feats.grad


@needs_spconv
def test_spunet_spconv_matches_native(two_threads):
    from pcseg.models import MODELS

    coords = random_grid(2, (20, 18, 12), 0.15, seed=13)
    torch.manual_seed(0)
    native_net = MODELS["spunet14"](3, channels=(8, 8, 16, 16, 16, 8, 8, 8), backend="native")
    spconv_net = MODELS["spunet14"](3, channels=(8, 8, 16, 16, 16, 8, 8, 8), backend="spconv")
    spconv_net.load_state_dict(native_net.state_dict())
    outs_n, grad_n = model_run(native_net, coords)
    outs_s, grad_s = model_run(spconv_net, coords)
    assert_close(outs_s, outs_n)
    assert_close(grad_s, grad_n)


def test_import_does_not_load_spconv():
    import subprocess
    import sys

    code = "import sys, pcseg, pcseg.sparse, pcseg.models; sys.exit('spconv' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
