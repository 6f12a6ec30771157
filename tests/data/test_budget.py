import io

import numpy as np
import pytest
import torch

from pcseg.data import PointDataset, Scene
from pcseg.weak import (
    apply_budget,
    budget_stats,
    format_budget_stats,
    merge_budgets,
    parse_budget,
    read_budget,
    sample_budget,
    write_budget,
)


class TinySource:
    """Three scenes with 100, 50 and 30 points; every third point of scene 'b' is unlabeled."""

    class_names = ("x", "y", "z")
    num_classes = 3

    def __init__(self):
        self.scene_ids = ["a", "b", "c"]
        self.sizes = [100, 50, 30]

    def __len__(self):
        return 3

    def __getitem__(self, i):
        n = self.sizes[i]
        label = np.arange(n) % 3
        if i == 1:
            label[::3] = -1
        return Scene(coord=np.random.default_rng(i).random((n, 3)).astype(np.float32),
                     color=np.zeros((n, 3), np.float32), label=label.astype(np.int64), scene_id=self.scene_ids[i])


def test_parse_specs():
    assert str(parse_budget("points:20")) == "points:20"
    assert parse_budget(" ratio : 0.001 ").value == 0.001
    assert parse_budget("scenes:0.5").kind == "scenes"
    for bad in ("points:0", "points:1.5", "ratio:2", "scenes:0", "pts:3", "points", 3):
        with pytest.raises(ValueError, match="budget spec"):
            parse_budget(bad)


def test_exact_counts_and_only_labeled_points():
    source = TinySource()
    budget = sample_budget(source, "points:10", seed=0)
    assert {k: len(v) for k, v in budget.items()} == {"a": 10, "b": 10, "c": 10}
    assert all(v.dtype == torch.int64 for v in budget.values())
    assert (source[1].label[budget["b"].numpy()] >= 0).all()
    ratio = sample_budget(source, "ratio:0.1", seed=0)
    assert {k: len(v) for k, v in ratio.items()} == {"a": 10, "b": 5, "c": 3}
    scenes = sample_budget(source, "scenes:0.34", seed=0)
    assert len(scenes) == 1
    (sid, index), = scenes.items()
    assert len(index) == (source[source.scene_ids.index(sid)].label >= 0).sum()


def test_seeds(tmp_path):
    source = TinySource()
    write_budget(sample_budget(source, "points:5", seed=1), tmp_path / "a.pth")
    write_budget(sample_budget(source, "points:5", seed=1), tmp_path / "b.pth")
    write_budget(sample_budget(source, "points:5", seed=2), tmp_path / "c.pth")
    assert (tmp_path / "a.pth").read_bytes() == (tmp_path / "b.pth").read_bytes()
    a, c = read_budget(tmp_path / "a.pth"), read_budget(tmp_path / "c.pth")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_budget_larger_than_scene():
    with pytest.raises(ValueError, match=r"scene 'b' has only 33 labeled points \(50 in all\), fewer than the 40"):
        sample_budget(TinySource(), "points:40")


def test_official_dict_format_loads(tmp_path):
    """The data-efficient files are plain torch.save'd dicts; values as tensors or numpy arrays."""
    torch.save({"scene0000_00": torch.tensor([5, 1, 3]), "scene0001_00": torch.tensor([0])}, tmp_path / "t.pth")
    budget = read_budget(tmp_path / "t.pth")
    assert budget["scene0000_00"].tolist() == [1, 3, 5]
    torch.save({"scene0000_00": np.array([2, 4], dtype=np.int64)}, tmp_path / "n.pth")
    assert read_budget(tmp_path / "n.pth")["scene0000_00"].tolist() == [2, 4]
    # a file pickled under numpy 1.x names numpy.core.multiarray (legacy torch format, so the bytes can be edited)
    buffer = io.BytesIO()
    torch.save({"scene0000_00": np.array([7, 2], dtype=np.int32)}, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    if b"numpy._core.multiarray" in data:
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    (tmp_path / "old.pth").write_bytes(data)
    assert read_budget(tmp_path / "old.pth")["scene0000_00"].tolist() == [2, 7]


def test_written_file_is_a_plain_dict(tmp_path):
    path = write_budget({"a": [3, 1]}, tmp_path / "x.pth")
    loaded = torch.load(path)
    assert type(loaded) is dict and list(loaded) == ["a"]
    assert loaded["a"].dtype == torch.int64 and loaded["a"].tolist() == [1, 3]
    with pytest.raises(FileExistsError, match="x.pth exists"):
        write_budget({"a": [0]}, path)
    assert not list(tmp_path.glob(".*tmp"))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        read_budget(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.pth could not be read"):
        read_budget(tmp_path / "junk.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="list.pth holds a list"):
        read_budget(tmp_path / "list.pth")
    torch.save({"a": torch.tensor([-1, 2])}, tmp_path / "neg.pth")
    with pytest.raises(ValueError, match="neg.pth: scene 'a' has a negative point index"):
        read_budget(tmp_path / "neg.pth")
    torch.save({"a": torch.tensor([0.5])}, tmp_path / "float.pth")
    with pytest.raises(ValueError, match="float.pth: scene 'a' has float32 indices"):
        read_budget(tmp_path / "float.pth")


def test_index_out_of_range_names_scene_and_file(tmp_path):
    write_budget({"c": [0, 30]}, tmp_path / "oor.pth")
    dataset = PointDataset(TinySource(), 0.1, budget=str(tmp_path / "oor.pth"))
    with pytest.raises(ValueError, match=r"oor.pth: scene 'c' lists point index 30 but the scene has only 30"):
        dataset.scene(2)
    write_budget({"zzz": [0]}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth names none of the 3 scenes"):
        PointDataset(TinySource(), 0.1, budget=str(tmp_path / "other.pth"))


def test_apply_budget_masks_everything_else():
    label = np.array([4, 5, 6, 7])
    budget = {"s": torch.tensor([1, 3])}
    assert apply_budget(label, budget, "s").tolist() == [-1, 5, -1, 7]
    assert apply_budget(label, budget, "absent").tolist() == [-1] * 4


def test_merge_never_in_place(tmp_path):
    old = write_budget({"a": [1, 2], "b": [0]}, tmp_path / "round0.pth")
    before = old.read_bytes()
    merged = merge_budgets(old, {"a": torch.tensor([2, 9]), "c": [4]}, tmp_path / "round1.pth")
    assert old.read_bytes() == before
    result = read_budget(merged)
    assert {k: v.tolist() for k, v in result.items()} == {"a": [1, 2, 9], "b": [0], "c": [4]}
    with pytest.raises(ValueError, match="is the old budget file"):
        merge_budgets(old, {"a": [5]}, old)
    with pytest.raises(FileExistsError):
        merge_budgets(old, {"a": [5]}, merged)


def test_stats():
    source = TinySource()
    budget = {"a": torch.tensor([0, 1, 2, 3]), "c": torch.tensor([5])}
    stats = budget_stats(budget, source)
    assert stats["points"] == 5 and stats["scenes"] == 2
    assert stats["per_class"] == {"x": 2, "y": 1, "z": 2}
    assert abs(stats["fraction"] - 5 / 130) < 1e-12
    text = format_budget_stats(stats)
    assert "labeled points: 5" in text and "x  2" in text
    with pytest.raises(ValueError, match="does not have, e.g. 'q'"):
        budget_stats({"q": torch.tensor([0])}, source)
