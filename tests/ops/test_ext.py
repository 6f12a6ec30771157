import importlib
import warnings

import pytest
import torch

from pcseg.ops import _ext
from pcseg.ops import segment_max, voxelize, voxelize_reference

# the modules (pcseg.ops.voxelize the attribute is the function)
VOXELIZE = importlib.import_module("pcseg.ops.voxelize")
SEGMENT = importlib.import_module("pcseg.ops.segment")


def test_has_op_matches_the_extension():
    ext = _ext.extension()
    if ext is None:
        assert not _ext.has_op("voxelize", "cpu")
        pytest.skip("pcseg._C is not built")
    cpu, cuda = set(ext.cpu_ops()), set(ext.cuda_ops())
    assert {"voxelize", "segment", "radius_query", "knn_query", "region_partition"} <= cpu
    assert cuda <= cpu
    assert _ext.has_op("voxelize", "cpu") and _ext.has_op("voxelize", torch.device("cpu"))
    assert _ext.has_op("voxelize", "cuda:0") == ("voxelize" in cuda)
    assert not _ext.has_op("no_such_op", "cpu")


def test_fallback_runs_the_reference_and_warns_once(monkeypatch):
    monkeypatch.setattr(VOXELIZE, "has_op", lambda name, device: False)
    monkeypatch.setattr(_ext, "_WARNED", set())
    coord = torch.rand(100, 3)
    with pytest.warns(RuntimeWarning, match="pcseg.ops.voxelize: .*pure-torch reference"):
        out = voxelize(coord, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = voxelize(coord, 0.1)
    ref = voxelize_reference(coord, 0.1)
    for a, b, r in zip(out, again, ref):
        assert torch.equal(a, r) and torch.equal(b, r)


def test_fallback_keeps_gradients(monkeypatch):
    monkeypatch.setattr(SEGMENT, "has_op", lambda name, device: False)
    monkeypatch.setattr(_ext, "_WARNED", set())
    src = torch.tensor([[1.0], [3.0], [2.0]], requires_grad=True)
    with pytest.warns(RuntimeWarning, match="pcseg.ops.segment"):
        segment_max(src, torch.tensor([0, 0, 1]), 2).sum().backward()
    assert src.grad.flatten().tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("value, error", [(0, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                                          (float("nan"), ValueError), ("1", TypeError), (True, TypeError)])
def test_check_positive(value, error):
    with pytest.raises(error, match="op: x must"):
        _ext.check_positive("op", "x", value)
