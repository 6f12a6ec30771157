import math

import pytest
import torch

from pcseg.engine.metrics import SegMetrics, confusion_matrix, iou_from_confusion


def test_literal_confusion_matrix():
    # rows = ground truth, columns = prediction
    conf = torch.tensor([[5, 1, 0, 0],
                         [2, 3, 1, 0],
                         [0, 0, 4, 0],
                         [0, 0, 0, 0]])  # class 3 never occurs
    iou = iou_from_confusion(conf)
    # class 0: tp 5, fp 2, fn 1 -> 5/8; class 1: tp 3, fp 1, fn 3 -> 3/7; class 2: tp 4, fp 1, fn 0 -> 4/5
    assert iou[:3].tolist() == pytest.approx([5 / 8, 3 / 7, 4 / 5])
    assert math.isnan(iou[3])
    m = SegMetrics(4, ["a", "b", "c", "d"])
    m.confusion = conf
    s = m.summary()
    assert s["miou"] == pytest.approx((5 / 8 + 3 / 7 + 4 / 5) / 3)
    assert s["acc"] == pytest.approx(12 / 16)
    assert s["iou"]["b"] == pytest.approx(3 / 7) and s["points"] == 16


def test_ignore_label_is_excluded():
    label = torch.tensor([0, 0, 1, 1, -1, -1, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    conf = confusion_matrix(pred, label, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    m = SegMetrics(3)
    m.update(pred[:3], label[:3])
    m.update(pred[3:], label[3:])
    assert torch.equal(m.confusion, conf)
    # class 0: 1/(1+1) ; class 1: 2/(2+1) ; class 2: 1/1 -> the ignored points predicted 2 and 0 do not count
    assert m.summary()["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m.summary()["acc"] == pytest.approx(4 / 5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="label 3 outside"):
        confusion_matrix(torch.tensor([0]), torch.tensor([3]), 3)
    with pytest.raises(ValueError, match="prediction outside"):
        confusion_matrix(torch.tensor([-2]), torch.tensor([0]), 3)
    with pytest.raises(ValueError, match="differ"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)
