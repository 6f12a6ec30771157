"""Short runs of the 2D methods (CAM weak supervision, few-shot) and the point-cloud few-shot routine."""
import numpy as np
import pytest
import torch

from pcseg.data2d import (
    EpisodeDataset, EpisodeSampler, SyntheticShapes2D, TrainImages, class_index_from_labels, collate_images,
    single_item,
)
from pcseg.methods.cam import CAMSegmentation, evaluate_segmentation
from pcseg.methods.fewshot import (
    FewShotMeter, FewShotSegmentation, PointEpisodeDataset, PointFewShot, PointMLP, evaluate_fewshot,
    evaluate_point_fewshot, fewshot_logits, fewshot_losses,
)
from pcseg.models2d import UNet2d
from pcseg.prototypes import flatten_nchw


def test_unet2d_shapes_and_gradients():
    net = UNet2d(channels=(8, 16, 32))
    out = net(torch.randn(2, 3, 16, 12))
    assert out.shape == (2, 8, 16, 12) and net.out_channels == 8
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 10, 12))


def test_cam_training_run(train):
    torch.manual_seed(0)
    data = SyntheticShapes2D(40, size=16, seed=0, max_objects=2)
    method = CAMSegmentation(UNet2d(channels=(8, 16)), data.num_classes, CAMSegmentation.Config(cls_steps=16))
    history = train(method, TrainImages(data), collate_images, steps=20, batch_size=4)
    assert "cls" in history[0] and "seg" not in history[0] and "seg" in history[-1] and "cls" not in history[-1]
    assert np.mean([h["cls"] for h in history[12:16]]) < np.mean([h["cls"] for h in history[:4]])
    # the stage counter a new training from these weights (train.init_from) restarts
    assert [int(method.state_dict()[name]) for name in method.step_buffers] == [20]
    method.eval()
    batch = collate_images([data[i] for i in range(6)])
    masks = method.pseudo_masks(batch)
    assert masks.shape == (6, 16, 16)
    for b in range(6):  # only classes named by the image-level labels can appear
        allowed = {-1, 0} | {k + 1 for k in np.flatnonzero(batch.image_labels[b].numpy())}
        assert set(masks[b].unique().tolist()) <= allowed
    assert method.predict(batch).shape == (6 * 16 * 16, data.num_classes)
    result = evaluate_segmentation(method.predict, data, data.num_classes, data.class_names)
    assert 0.0 <= result["miou"] <= 1.0 and result["points"] == 40 * 16 * 16


def test_fewshot_meter_literal():
    meter = FewShotMeter()
    meter.update(torch.tensor([1, 1, 0, 0]), torch.tensor([1, 0, 1, 0]), classes=[7])
    meter.update(torch.tensor([1, 1, 0]), torch.tensor([1, 1, -1]), classes=[7])
    meter.update(torch.tensor([2, 1, 0]), torch.tensor([2, 2, 0]), classes=[3, 4])
    out = meter.summary()
    # class 7: tp 3, fp 1, fn 1; class 3: tp 0 fp 1 fn 0 -> 0; class 4: tp 1 fp 0 fn 1 -> 0.5
    assert out["iou"] == {3: 0.0, 4: 0.5, 7: 0.6}
    assert out["miou"] == pytest.approx((0.0 + 0.5 + 0.6) / 3)
    assert out["episodes"] == 3


def test_fewshot_logits_same_on_points_and_images():
    torch.manual_seed(0)
    support_img = torch.randn(2, 4, 2, 3)  # 2 shots, D = 4
    support_lab = torch.tensor([[[1, 1, 0], [0, -1, 0]], [[0, 1, 1], [0, 0, 0]]])
    query_img = torch.randn(1, 4, 2, 3)
    s_feat, s_sample = flatten_nchw(support_img)
    q_feat, _ = flatten_nchw(query_img)
    image_logits = fewshot_logits(s_feat, support_lab.reshape(-1), s_sample, q_feat, n_way=1)
    points = support_img.permute(0, 2, 3, 1).reshape(-1, 4)
    point_logits = fewshot_logits(points, support_lab.reshape(-1), torch.tensor([0] * 6 + [1] * 6),
                                  query_img.permute(0, 2, 3, 1).reshape(-1, 4), n_way=1)
    assert torch.equal(image_logits, point_logits)
    # a query equal to the support's foreground mean matches way 1 with the full scale
    fg = (s_feat[[0, 1]].mean(0) + s_feat[[7, 8]].mean(0)) / 2
    assert fewshot_logits(s_feat, support_lab.reshape(-1), s_sample, fg[None], 1)[0, 1].item() == pytest.approx(20.0)
    losses = fewshot_losses(s_feat, support_lab.reshape(-1), s_sample, q_feat, torch.zeros(6, dtype=torch.long), 1)
    assert set(losses) == {"query", "align"}
    assert "align" not in fewshot_losses(s_feat, support_lab.reshape(-1), s_sample, q_feat,
                                         torch.zeros(6, dtype=torch.long), 1, align_weight=0.0)


def test_fewshot_image_episode_run(train):
    torch.manual_seed(0)
    base = SyntheticShapes2D(40, size=16, classes=(1, 2), seed=0, max_objects=2)
    novel = SyntheticShapes2D(30, size=16, classes=(5, 6), seed=1, max_objects=2)
    base_index = class_index_from_labels([base[i].label for i in range(len(base))], 8)
    novel_index = class_index_from_labels([novel[i].label for i in range(len(novel))], 8)
    method = FewShotSegmentation(UNet2d(channels=(8, 16)), 9, FewShotSegmentation.Config(n_way=2))
    episodes = EpisodeDataset(base, EpisodeSampler(base_index, (1, 2), n_way=2, k_shot=1, n_query=1), 6)
    history = train(method, episodes, single_item, steps=6)
    assert {"query", "align"} <= set(history[0]) and all(np.isfinite(h["query"]) for h in history)
    for k in (1, 5):
        result = evaluate_fewshot(method, novel, novel_index, (5, 6), k_shot=k, n_way=1, num_episodes=4)
        assert result["episodes"] == 4 and set(result["iou"]) <= {5, 6}
        assert 0.0 <= result["miou"] <= 1.0


def test_point_fewshot_run(train):
    from pcseg.data.synthetic_indoor import generate_indoor_scene

    torch.manual_seed(0)
    scenes = [generate_indoor_scene(i, points=1000) for i in range(5)]
    index = class_index_from_labels([s.label for s in scenes], 20)
    method = PointFewShot(PointMLP(hidden=(16,), out_channels=8))
    base = [c for c in (0, 1, 2) if len(index.get(c, [])) >= 2]
    episodes = PointEpisodeDataset(scenes, EpisodeSampler(index, base, 1, 1, 1), 6, points_per_class=10)
    history = train(method, episodes, single_item, steps=6)
    assert {"query", "align"} <= set(history[0]) and all(np.isfinite(h["loss"]) for h in history)
    result = evaluate_point_fewshot(method, scenes, index, base, k_shot=1, points_per_class=10, num_episodes=3)
    assert result["episodes"] == 3 and 0.0 <= result["miou"] <= 1.0
