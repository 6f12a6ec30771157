"""Literal values for the shared pseudo-label and prototype functions, each computed on a 3D-shaped (N, C) input and
on a 2D-shaped (B, C, H, W) input flattened with flatten_nchw: one code path serves both."""
import math

import pytest
import torch
from torch import nn

from pcseg.prototypes import (
    PrototypeMemory, cosine_logits, episode_prototypes, flatten_nchw, masked_average_pooling,
    prototype_alignment_loss, unflatten_nchw,
)
from pcseg.pseudo_labels import (
    EMATeacher, cam_to_labels, class_balanced_labels, confidence_labels, ema_update, frozen_norm_statistics,
    normalize_cam, soft_cross_entropy, soft_labels,
)


def as_image(rows: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """(B*H*W, C) rows -> the (B, C, H, W) map whose flatten_nchw gives those rows back."""
    return rows.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()


def both_layouts(rows: torch.Tensor, b: int, h: int, w: int):
    """[(rows, sample) as points, (rows, sample) flattened from an image batch]."""
    flat, sample = flatten_nchw(as_image(rows, b, h, w))
    return [(rows, torch.arange(b).repeat_interleave(h * w)), (flat, sample)]


FEAT = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [2.0, 2.0]])
LABEL = torch.tensor([0, 0, 1, -1])


def test_flatten_roundtrip_and_order():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    flat, sample = flatten_nchw(x)
    assert flat.shape == (8, 3)
    assert flat[5].tolist() == x[1, :, 0, 1].tolist()
    assert sample.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert torch.equal(unflatten_nchw(flat, 2, 2, 2), x)


@pytest.mark.parametrize("layout", [0, 1], ids=["points", "image"])
def test_masked_average_pooling_literal(layout):
    feat, sample = both_layouts(FEAT, 2, 1, 2)[layout]
    label = LABEL if layout == 0 else as_image(LABEL[:, None], 2, 1, 2).reshape(-1)
    proto, count = masked_average_pooling(feat, label, 2)
    assert proto.tolist() == [[2.0, 1.0], [0.0, 4.0]]
    assert count.tolist() == [2, 1]
    proto, count = masked_average_pooling(feat, label, 2, sample=sample)
    assert proto.tolist() == [[[2.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 4.0]]]
    assert count.tolist() == [[2, 0], [0, 1]]


def test_masked_average_pooling_gradient_and_errors():
    feat = FEAT.clone().requires_grad_(True)
    proto, _ = masked_average_pooling(feat, LABEL, 2)
    proto.sum().backward()
    assert feat.grad.tolist() == [[0.5, 0.5], [0.5, 0.5], [1.0, 1.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="out of range"):
        masked_average_pooling(FEAT, torch.tensor([0, 0, 2, -1]), 2)
    with pytest.raises(ValueError, match="label must be"):
        masked_average_pooling(FEAT, LABEL[:3], 2)


def test_episode_prototypes_average_over_shots():
    # shot 0 has class 1 at [0, 2] (mean), shot 1 at [4, 0]; class 0 only in shot 0
    feat = torch.tensor([[0.0, 1.0], [0.0, 3.0], [1.0, 1.0], [4.0, 0.0]])
    label = torch.tensor([1, 1, 0, 1])
    sample = torch.tensor([0, 0, 0, 1])
    assert episode_prototypes(feat, label, 3, sample).tolist() == [[1.0, 1.0], [2.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize("layout", [0, 1], ids=["points", "image"])
def test_cosine_logits_literal(layout):
    feat, sample = both_layouts(FEAT, 2, 1, 2)[layout]
    logits = cosine_logits(feat, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), scale=10.0)
    s13 = math.sqrt(13)
    expected = [[10.0, 0.0], [30 / s13, 20 / s13], [0.0, 10.0], [10 / math.sqrt(2), 10 / math.sqrt(2)]]
    assert torch.allclose(logits, torch.tensor(expected), atol=1e-5)
    # per-sample prototypes: sample 1 uses swapped prototypes
    per_sample = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    logits = cosine_logits(feat, per_sample, scale=10.0, sample=sample)
    expected[2], expected[3] = [10.0, 0.0], [10 / math.sqrt(2), 10 / math.sqrt(2)]
    assert torch.allclose(logits, torch.tensor(expected), atol=1e-5)
    assert cosine_logits(feat, torch.zeros(1, 2)).abs().max() == 0  # an empty prototype scores 0


PROB = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]])


@pytest.mark.parametrize("layout", [0, 1], ids=["points", "image"])
def test_confidence_labels_literal(layout):
    prob, _ = both_layouts(PROB, 1, 2, 2)[layout]
    assert confidence_labels(prob, 0.6).tolist() == [0, -1, 2, 1]
    assert confidence_labels(prob, 0.0).tolist() == [0, 0, 2, 1]
    with pytest.raises(ValueError, match="threshold"):
        confidence_labels(prob, 1.5)


BAL = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55], [0.7, 0.3]])


@pytest.mark.parametrize("layout", [0, 1], ids=["points", "image"])
def test_class_balanced_labels_literal(layout):
    prob, _ = both_layouts(BAL, 2, 1, 3)[layout]
    # class 0 has 4 candidates -> keeps its 2 most confident (rows 0, 2); class 1 has 2 -> keeps 1 (row 3)
    assert class_balanced_labels(prob, 0.5).tolist() == [0, -1, 0, 1, -1, -1]
    assert class_balanced_labels(prob, 1.0).tolist() == [0, 0, 0, 1, 1, 0]
    assert class_balanced_labels(prob, 0.5, threshold=0.85).tolist() == [0, -1, -1, -1, -1, -1]
    valid = torch.tensor([False, True, True, True, True, True])
    assert class_balanced_labels(prob, 0.5, valid=valid).tolist() == [-1, -1, 0, 1, -1, 0]


def test_soft_labels_and_soft_cross_entropy():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert torch.allclose(soft_labels(logits, 1.0), torch.tensor([[0.25, 0.75]]))
    assert torch.allclose(soft_labels(logits, 0.5), torch.tensor([[0.1, 0.9]]))
    target = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        soft_labels(logits, 0.0)


CAM = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.2, 0.1],
                    [0.0, 3.0], [0.0, 1.5], [4.0, 0.0], [0.0, 0.6]])
PRESENT = torch.tensor([[True, True], [False, True]])


@pytest.mark.parametrize("layout", [0, 1], ids=["points", "image"])
def test_cam_to_labels_literal(layout):
    cam, sample = both_layouts(CAM, 2, 2, 2)[layout]
    norm = normalize_cam(cam, sample)
    assert torch.allclose(norm[:4], torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0], [0.1, 0.1]]))
    label = cam_to_labels(cam, bg_threshold=0.3, fg_threshold=0.6, present=PRESENT, sample=sample)
    # sample 1 lacks class 0, so its strong class-0 activation (row 6) becomes background
    assert label.tolist() == [1, -1, 2, 0, 2, -1, 0, 0]
    label = cam_to_labels(cam, bg_threshold=0.3, sample=sample)
    assert label.tolist() == [1, 1, 2, 0, 2, 2, 1, 0]


def test_ema_update_and_teacher():
    student, teacher = nn.Sequential(nn.Linear(1, 1), nn.BatchNorm1d(1)), nn.Sequential(nn.Linear(1, 1),
                                                                                         nn.BatchNorm1d(1))
    with torch.no_grad():
        teacher[0].weight.fill_(1.0)
        student[0].weight.fill_(3.0)
        student[1].running_mean.fill_(2.0)
        student[1].num_batches_tracked.fill_(7)
    ema_update(teacher, student, decay=0.75)
    assert teacher[0].weight.item() == 1.5
    assert teacher[1].running_mean.item() == 0.5
    assert teacher[1].num_batches_tracked.item() == 7
    wrapped = EMATeacher(student, decay=0.5)
    assert not any(p.requires_grad for p in wrapped.parameters())
    with torch.no_grad():
        student[0].weight.fill_(5.0)
    wrapped.update(student)
    assert wrapped.model[0].weight.item() == 4.0
    wrapped.train()
    assert not wrapped.model.training
    assert wrapped(torch.ones(3, 1)).shape == (3, 1)


def test_teacher_with_batch_statistics_normalises_with_its_input_and_keeps_its_running_ones():
    student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        student[1].running_mean.fill_(5.0)
        student[1].running_var.fill_(4.0)
        student[1].num_batches_tracked.fill_(3)
    teacher = EMATeacher(student, decay=0.5)
    x = torch.randn(40, 2) * 3 + 1
    linear = teacher.model[0](x)
    running = (linear - 5.0) / torch.sqrt(torch.tensor(4.0) + 1e-5)
    assert torch.allclose(teacher(x), running, atol=1e-5)  # eval mode: the running statistics
    batch = teacher(x, batch_statistics=True)
    mean, var = linear.mean(0), linear.var(0, unbiased=False)
    assert torch.allclose(batch, (linear - mean) / torch.sqrt(var + 1e-5), atol=1e-4)
    norm = teacher.model[1]
    assert norm.running_mean.tolist() == [5.0, 5.0] and norm.running_var.tolist() == [4.0, 4.0]
    assert norm.num_batches_tracked.item() == 3 and norm.momentum == 0.1
    assert not teacher.model.training and not batch.requires_grad


def test_frozen_norm_statistics_keeps_running_stats_but_normalises_with_the_batch():
    norm = nn.BatchNorm1d(3, momentum=0.5).train()
    x = torch.randn(50, 3) * 4 + 2
    before = (norm.running_mean.clone(), norm.running_var.clone(), norm.num_batches_tracked.clone())
    with frozen_norm_statistics(norm):
        y = norm(x)
    assert torch.equal(norm.running_mean, before[0]) and torch.equal(norm.running_var, before[1])
    assert torch.equal(norm.num_batches_tracked, before[2]) and norm.momentum == 0.5
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-5)  # batch statistics, not the running ones
    norm(x)
    assert not torch.equal(norm.running_mean, before[0])  # outside the block the statistics move again


def test_prototype_memory_literal():
    memory = PrototypeMemory(num_classes=3, dim=2, decay=0.5, scale=10.0)
    memory.update(FEAT, LABEL)
    assert memory.prototypes.tolist() == [[2.0, 1.0], [0.0, 4.0], [0.0, 0.0]]
    assert memory.initialized.tolist() == [True, True, False]
    memory.update(torch.tensor([[4.0, 3.0]]), torch.tensor([0]))
    assert memory.prototypes.tolist() == [[3.0, 2.0], [0.0, 4.0], [0.0, 0.0]]
    logits = memory(torch.tensor([[0.0, 1.0]]))
    assert torch.allclose(logits, torch.tensor([[20 / math.sqrt(13), 10.0, 0.0]]), atol=1e-5)


def test_prototype_alignment_loss_literal_and_gradient():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    query_logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = prototype_alignment_loss(query, query_logits, support, torch.tensor([0, 1]), scale=10.0)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-10.0)), abs=1e-6)
    swapped = prototype_alignment_loss(query, query_logits, support, torch.tensor([1, 0]), scale=10.0)
    assert swapped.item() == pytest.approx(10.0 + math.log1p(math.exp(-10.0)), rel=1e-6)
    swapped.backward()
    assert query.grad.abs().sum() > 0 and support.grad.abs().sum() > 0
    # restricting support element 0 to {class 1} leaves it a single choice: zero loss there
    allowed = torch.tensor([[False, True], [True, True]])
    loss = prototype_alignment_loss(query, query_logits, support, torch.tensor([1, 0]), 10.0, allowed=allowed)
    assert loss.item() == pytest.approx((10.0 + math.log1p(math.exp(-10.0))) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="allowed excludes"):
        prototype_alignment_loss(query, query_logits, support, torch.tensor([0, 0]), 10.0, allowed=allowed)
    assert prototype_alignment_loss(query, query_logits, support, torch.tensor([-1, -1])).item() == 0.0
