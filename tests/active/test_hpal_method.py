import pytest
import torch

from pcseg.data import collate, voxelize_scene
from pcseg.engine.config import load_config
from pcseg.methods import METHODS
from pcseg.methods.hpal import HPAL

from active_helpers import LinearBackbone, TinySource


def make_batch(labeled_every=50):
    source = TinySource(num_scenes=2, points=400)
    samples = [voxelize_scene(source[i], 0.25, ("color",)) for i in range(2)]
    batch = collate(samples)
    keep = torch.zeros_like(batch.label, dtype=torch.bool)
    keep[::labeled_every] = True
    batch.label = torch.where(keep, batch.label, torch.full_like(batch.label, -1))
    return batch


def make_method(**cfg):
    torch.manual_seed(0)
    return HPAL(LinearBackbone(3), 3, HPAL.Config(**cfg))


def test_registered_and_configurable():
    assert METHODS["hpal"] is HPAL
    cfg = load_config(overrides=["method.name=hpal", "method.threshold=0.9", "method.ema_decay=0.99"])
    assert isinstance(cfg.method, HPAL.Config) and cfg.method.threshold == 0.9
    assert HPAL.Config().ema_decay == 0.955 and HPAL.Config().threshold == 0.75
    assert HPAL.Config().teacher_norm == "batch"
    with pytest.raises(ValueError, match="method.threshold"):
        make_method(threshold=1.5)


def test_losses_train_the_student_only():
    method = make_method(threshold=0.0)
    losses = method(make_batch())
    assert set(losses) == {"ce", "pseudo"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in method.backbone.parameters())
    assert all(p.grad is None and not p.requires_grad for p in method.teacher.parameters())
    assert any(k.startswith("teacher.model.backbone.") for k in method.state_dict())


def test_teacher_follows_the_student_by_ema():
    method = make_method(ema_decay=0.9)
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    batch = make_batch()
    start = method.teacher.model.head.weight.clone()
    sum(method(batch).values()).backward()
    optimizer.step()
    assert torch.equal(method.teacher.model.head.weight, start), "the first forward must not move the teacher"
    student = method.head.weight.detach().clone()
    method(batch)
    assert torch.allclose(method.teacher.model.head.weight, 0.9 * start + 0.1 * student)
    assert int(method.steps) == 2


@pytest.mark.parametrize("norm", ["running", "batch"])
def test_teacher_norm_chooses_the_teachers_batch_norm_statistics(norm):
    batch = make_batch(labeled_every=1000)
    method = make_method(threshold=0.0, symmetry=False, feature_noise=0.0, teacher_norm=norm).train()
    with torch.no_grad():  # running statistics far from any batch's
        method.teacher.model.backbone.norm.running_mean.fill_(50.0)
    teacher_running = method.teacher.model.backbone.norm.running_mean.clone()
    pseudo = method.pseudo_labels(batch)
    unlabeled = pseudo >= 0
    with torch.no_grad():
        student = method.voxel_logits(batch).argmax(1)  # training mode: the batch's statistics
    agree = bool(torch.equal(pseudo[unlabeled], student[unlabeled]))
    assert agree == (norm == "batch")  # the same weights and view: only the statistics differ
    assert torch.equal(method.teacher.model.backbone.norm.running_mean, teacher_running)
    assert not method.teacher.model.training
    with pytest.raises(ValueError, match="method.teacher_norm"):
        load_config(overrides=["method.name=hpal", "method.teacher_norm=train"])


def test_pseudo_labels_skip_labeled_voxels_and_respect_the_threshold():
    batch = make_batch(labeled_every=3)
    labeled = torch.zeros(len(batch.feat), dtype=torch.bool)
    labeled[batch.inverse[batch.label >= 0]] = True
    method = make_method(threshold=0.0)
    pseudo = method.pseudo_labels(batch)
    assert bool((pseudo[labeled] == -1).all()) and bool((pseudo[~labeled] >= 0).all())
    method = make_method(threshold=1.0)  # no softmax of 3 classes reaches 1 here
    assert bool((method.pseudo_labels(batch) == -1).all())
    assert float(method(batch)["pseudo"].detach()) == 0.0


def test_rampup_scales_the_pseudo_loss():
    batch = make_batch()
    full = make_method(threshold=0.0)(batch)["pseudo"]
    ramped = make_method(threshold=0.0, rampup_steps=4)(batch)["pseudo"]
    assert torch.allclose(ramped, full / 4)
    # the ramp counts the forwards in a buffer that a new training from these weights (train.init_from) restarts
    method = make_method(rampup_steps=4)
    method(batch)
    assert [int(method.state_dict()[name]) for name in method.step_buffers] == [1]


def test_two_streams_train_the_student_on_an_augmented_copy_too():
    from pcseg.methods.cpcm import augmented_copy
    from pcseg.methods.supervised import cross_entropy

    batch = make_batch(labeled_every=3)
    method = make_method(threshold=0.0, two_streams=True)
    torch.manual_seed(1)
    losses = method(batch)
    assert set(losses) == {"ce", "pseudo", "ce_aux", "pseudo_aux"}
    method = make_method(threshold=0.0, two_streams=True)  # the same weights: replay the step's random draws
    torch.manual_seed(1)
    with torch.no_grad():
        pseudo = method.pseudo_labels(batch)
        view = augmented_copy(batch, 0.05)
        copy = method.head(method.backbone(view).feats)
        plain = method.voxel_logits(batch)
    assert not torch.equal(view.feats, batch.feat)
    assert torch.allclose(losses["ce_aux"], cross_entropy(copy[batch.inverse], batch.label), atol=1e-6)
    assert torch.allclose(losses["pseudo_aux"], cross_entropy(copy, pseudo), atol=1e-6)
    assert torch.allclose(losses["pseudo"], cross_entropy(plain, pseudo), atol=1e-6)
    assert not torch.allclose(losses["ce_aux"], losses["ce"])
