import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pcseg.methods.cpcm import (
    CPCM,
    block_mask,
    grid_symmetry,
    js_divergence,
    kl_divergence,
    point_mask,
    region_mask,
    sample_cells,
)
from pcseg.ops import region_partition
from pcseg.sparse import SparseTensor


def _grid(n=3000, batch_size=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    coords = torch.randint(0, 40, (n, 3), generator=g)
    batch = torch.randint(0, batch_size, (n, 1), generator=g)
    return torch.unique(torch.cat([batch, coords], 1), dim=0).int()


def test_sample_cells_exact_count_per_batch_element():
    mask = sample_cells(64, 0.75, 3, torch.Generator().manual_seed(1)).view(3, 64)
    assert mask.sum(1).tolist() == [48, 48, 48]
    assert not torch.equal(mask[0], mask[1])
    with pytest.raises(ValueError, match="mask ratio"):
        sample_cells(8, 1.5, 1)


@pytest.mark.parametrize("grid_size", [2, 4, 8])
def test_region_mask_covers_ratio_of_cells_and_is_constant_per_cell(grid_size):
    # two dense 16^3 blocks: every quantile cell is occupied, so the masked share of cells is observable
    axis = torch.arange(16)
    xyz = torch.cartesian_prod(axis, axis, axis)
    coords = torch.cat([torch.cat([torch.full((len(xyz), 1), b), xyz], 1) for b in range(2)]).int()
    mask = region_mask(coords, grid_size, 0.75, torch.Generator().manual_seed(0))
    cell = region_partition(coords[:, 1:].float(), grid_size, coords[:, 0].long())
    for c in torch.unique(cell):
        values = mask[cell == c]
        assert bool((values == values[0]).all()), "a cell is partly masked"
    total = grid_size ** 3
    for b in range(2):
        occupied = torch.unique(cell[coords[:, 0] == b])
        masked = torch.unique(cell[(coords[:, 0] == b) & mask])
        assert len(occupied) == total
        assert abs(len(masked) - 0.75 * total) <= 1


def test_region_mask_follows_quantile_pivots():
    coords = _grid(batch_size=1)
    cell = region_partition(coords[:, 1:].float(), 4, coords[:, 0].long())
    ix = cell // 16
    order = torch.argsort(coords[:, 1].long() * 10_000 + ix)
    assert bool((torch.diff(ix[order]) >= 0).all()), "x cells not monotone in x"
    counts = torch.bincount(ix, minlength=4).float()
    assert counts.min() > 0.15 * len(coords), counts  # quantile cells share the voxels evenly


def test_region_mask_deterministic_under_seed():
    coords = _grid()
    a = region_mask(coords, 4, 0.75, torch.Generator().manual_seed(3))
    b = region_mask(coords, 4, 0.75, torch.Generator().manual_seed(3))
    c = region_mask(coords, 4, 0.75, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_point_and_block_masks():
    coords = _grid()
    pm = point_mask(len(coords), 0.5, torch.Generator().manual_seed(0))
    assert 0.45 < pm.float().mean() < 0.55
    bm = block_mask(coords, 10, 0.5, torch.Generator().manual_seed(0))
    block = torch.cat([coords[:, :1], coords[:, 1:] // 10], 1)
    _, block_id = torch.unique(block, dim=0, return_inverse=True)
    for i in torch.unique(block_id):
        values = bm[block_id == i]
        assert bool((values == values[0]).all())
    assert abs(len(torch.unique(block_id[bm])) - 0.5 * (int(block_id.max()) + 1)) <= 1


def test_divergences_zero_iff_identical_and_bounded():
    logits = torch.randn(50, 6)
    assert js_divergence(logits, logits).abs() < 1e-6
    assert kl_divergence(logits, logits).abs() < 1e-6
    other = torch.randn(50, 6)
    assert js_divergence(logits, other) > 1e-3
    assert kl_divergence(logits, other) > 1e-3
    extreme = torch.tensor([[100.0, -100.0]])
    assert js_divergence(extreme, -extreme) <= torch.log(torch.tensor(2.0)) + 1e-5


def test_grid_symmetry_is_a_bijection_of_each_scene():
    coords = _grid()
    out = grid_symmetry(coords, torch.Generator().manual_seed(0))
    assert out.dtype == coords.dtype and bool((out[:, 1:] >= 0).all())
    assert torch.equal(out[:, 0], coords[:, 0])
    assert len(torch.unique(out, dim=0)) == len(coords)
    # pairwise distances within a scene are preserved (rotations by 90 degrees and flips are isometries)
    sel = coords[:, 0] == 0
    d_in = torch.cdist(coords[sel, 1:].float()[:100], coords[sel, 1:].float()[:100])
    d_out = torch.cdist(out[sel, 1:].float()[:100], out[sel, 1:].float()[:100])
    assert torch.allclose(d_in, d_out)


class _Recorder(nn.Module):
    """Backbone recording its input features: each voxel sees itself and the batch mean (its "context")."""

    out_channels = 4

    def __init__(self):
        super().__init__()
        self.calls = []
        self.scale = nn.Parameter(torch.ones(4))
        self.context = nn.Parameter(torch.ones(4))

    def forward(self, x):
        self.calls.append(x.feats.detach().clone())
        return x.replace_feature(x.feats * self.scale + x.feats.mean(0) * self.context)


def _batch(coords, num_classes=3):
    from pcseg.data.batch import PointBatch

    m = len(coords)
    g = torch.Generator().manual_seed(0)
    label = torch.full((m,), -1)
    label[:20] = torch.randint(0, num_classes, (20,), generator=g)
    counts = torch.bincount(coords[:, 0].long())
    offset = torch.cumsum(counts, 0)
    return PointBatch(coord=coords[:, 1:].float(), feat=torch.rand(m, 4, generator=g) + 0.5, grid_coord=coords,
                      inverse=torch.arange(m), label=label, offset=offset, voxel_offset=offset,
                      point_index=torch.arange(m), scene_ids=[f"s{b}" for b in range(len(counts))])


def test_masked_features_zero_unmasked_untouched_and_gradient_path():
    torch.manual_seed(0)
    coords = _grid()
    batch = _batch(coords)
    backbone = _Recorder()
    method = CPCM(backbone, 3, CPCM.Config(mask_weight=5.0))
    losses = method(batch)
    assert set(losses) == {"ce", "mask_consistency"}
    full_in, masked_in = backbone.calls
    assert torch.equal(full_in, batch.feat)
    zero = (masked_in == 0).all(1)
    assert bool(zero.any()) and bool((~zero).any())
    assert torch.equal(masked_in[~zero], batch.feat[~zero]), "unmasked features changed"
    assert 0.6 < zero.float().mean() < 0.9
    # masked voxels have zero input: the consistency loss can only be lowered through the context
    losses["mask_consistency"].backward()
    assert backbone.context.grad is not None and backbone.context.grad.abs().sum() > 0


def test_consistency_gradient_only_through_masked_view_rows():
    full = torch.randn(10, 3, requires_grad=True)
    masked = torch.randn(10, 3, requires_grad=True)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[:4] = True
    loss = js_divergence(masked[mask], full.detach()[mask])
    loss.backward()
    assert full.grad is None
    assert bool((masked.grad[4:] == 0).all()) and bool((masked.grad[:4] != 0).any())


def test_augmentation_consistency_term():
    coords = _grid()
    method = CPCM(_Recorder(), 3, CPCM.Config(aug_weight=2.0))
    losses = method(_batch(coords))
    assert set(losses) == {"ce", "mask_consistency", "aug_consistency"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_two_streams_mask_the_augmented_copy_and_follow_both_views():
    torch.manual_seed(0)
    batch = _batch(_grid())
    backbone = _Recorder()
    method = CPCM(backbone, 3, CPCM.Config(two_streams=True, mask_weight=5.0))
    losses = method(batch)
    assert set(losses) == {"ce", "ce_aux", "mask_consistency"}
    full_in, aux_in, masked_in = backbone.calls
    assert torch.equal(full_in, batch.feat)
    noise = aux_in - batch.feat
    assert 0.02 < float(noise.std()) < 0.1  # the copy carries the feature noise (std 0.05)
    zero = (masked_in == 0).all(1)
    assert 0.6 < zero.float().mean() < 0.9
    assert torch.equal(masked_in[~zero], aux_in[~zero]), "the masked view is not the augmented copy"
    # the consistency is the mean of "self" (masked vs copy) and "corr" (masked vs full view)
    with torch.no_grad():
        full, aux, masked = (method.head(backbone(SparseTensor(f, batch.grid_coord)).feats)
                             for f in (full_in, aux_in, masked_in))
    expected = 5.0 * (js_divergence(masked[zero], aux[zero]) + js_divergence(masked[zero], full[zero])) / 2
    assert torch.allclose(losses["mask_consistency"], expected, atol=1e-6)
    assert torch.allclose(losses["ce_aux"], F.cross_entropy(aux, batch.label, ignore_index=-1), atol=1e-6)


class _NormBackbone(nn.Module):
    """Linear + BatchNorm on the voxel features, the layers whose running statistics CPCM's extra views must keep."""

    out_channels = 4

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.norm = nn.BatchNorm1d(4, momentum=0.5)

    def forward(self, x):
        return x.replace_feature(self.norm(self.linear(x.feats)))


@pytest.mark.parametrize("extra", [{}, {"aug_weight": 2.0}, {"two_streams": True}])
def test_extra_views_leave_batch_norm_running_statistics_to_the_full_view(extra):
    torch.manual_seed(0)
    batch = _batch(_grid())
    method = CPCM(_NormBackbone(), 3, CPCM.Config(**extra)).train()
    reference = CPCM(_NormBackbone(), 3, CPCM.Config()).train()
    reference.load_state_dict(method.state_dict())
    method(batch)
    reference.voxel_logits(batch)  # the full view alone
    for name, value in reference.state_dict().items():
        assert torch.equal(method.state_dict()[name], value), name


def test_bad_config():
    with pytest.raises(ValueError, match="unknown mask"):
        CPCM(_Recorder(), 3, CPCM.Config(mask="nope"))
