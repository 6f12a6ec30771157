import csv

import numpy as np
import pytest
import torch

from pcseg.active.annotator import (
    AnnotationError,
    export_picks,
    import_annotations,
    labels_path,
    read_labels,
    scene_file_stem,
)
from pcseg.vis.ply import read_ply
from pcseg.weak.budget import read_budget, write_budget
from active_helpers import CLASSES, TinySource

PICKS = {"area_1/room_0": torch.tensor([3, 10, 42]), "area_1/room_2": torch.tensor([0, 8])}
PREVIOUS = {"area_1/room_0": torch.tensor([1, 2]), "area_1/room_1": torch.tensor([5])}


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.fixture
def exported(tmp_path):
    source = TinySource()
    files = export_picks(PICKS, source, tmp_path / "export", previous=PREVIOUS)
    return source, tmp_path, files


def test_export_writes_ply_csv_and_classes(exported):
    source, tmp_path, files = exported
    out = tmp_path / "export"
    assert sorted(p.name for p in files) == sorted(["classes.csv", "area_1__room_0.ply", "area_1__room_0.csv",
                                                    "area_1__room_2.ply", "area_1__room_2.csv"])
    assert read_rows(out / "classes.csv")[1:] == [[str(i), n] for i, n in enumerate(CLASSES)]
    rows = read_rows(out / "area_1__room_0.csv")
    assert rows[0] == ["scene", "index", "x", "y", "z", "label"]
    scene = source[0]
    assert [int(r[1]) for r in rows[1:]] == [3, 10, 42]
    assert all(r[0] == "area_1/room_0" and r[5] == "" for r in rows[1:])
    assert np.allclose([float(v) for v in rows[2][2:5]], scene.coord[10], atol=1e-4)
    arrays, meta = read_ply(out / "area_1__room_0.ply")
    assert meta["scene_id"] == "area_1/room_0" and len(arrays["coord"]) == scene.num_points
    picked = np.flatnonzero(arrays["uncertainty"] == 1)
    assert picked.tolist() == [3, 10, 42]
    assert np.allclose(arrays["rgb"][picked], [1.0, 0.45, 0.0], atol=1 / 255)
    known = np.flatnonzero(arrays["label"] >= 0)
    assert known.tolist() == [1, 2] and arrays["label"][2] == scene.label[2]
    with pytest.raises(ValueError, match="export to a new folder"):
        export_picks(PICKS, source, out)


def test_round_trip_puts_the_edited_labels_in_a_new_budget(exported):
    source, tmp_path, _ = exported
    out = tmp_path / "export"
    rows = read_rows(out / "area_1__room_0.csv")
    rows[1][5], rows[2][5], rows[3][5] = "2", "Wall", ""  # by id, by name (any case), left unlabeled
    write_rows(out / "area_1__room_0.csv", rows)
    rows = read_rows(out / "area_1__room_2.csv")
    rows[1][5], rows[2][5] = "0", "chair"
    write_rows(out / "area_1__room_2.csv", rows)
    previous = write_budget(PREVIOUS, tmp_path / "round_0.pt")

    path, annotations = import_annotations(sorted(out.glob("*__*.csv")), source, previous, tmp_path / "round_1.pt")
    assert annotations.num_labeled == 4 and annotations.skipped == 1
    budget = read_budget(path)
    assert budget["area_1/room_0"].tolist() == [1, 2, 3, 10]
    assert budget["area_1/room_1"].tolist() == [5]
    assert budget["area_1/room_2"].tolist() == [0, 8]
    labels = read_labels(labels_path(path))
    assert labels["area_1/room_0"][0].tolist() == [3, 10] and labels["area_1/room_0"][1].tolist() == [2, 1]
    assert labels["area_1/room_2"][1].tolist() == [0, 2]
    assert read_budget(previous)["area_1/room_0"].tolist() == [1, 2], "the previous budget changed"
    with pytest.raises(FileExistsError):
        import_annotations(sorted(out.glob("*__*.csv")), source, previous, path)


def test_the_class_list_among_the_csvs_is_skipped(exported):
    """`pcseg labels import DIR/*.csv` (what `pcseg select --export` suggests) also matches DIR/classes.csv."""
    source, tmp_path, _ = exported
    out = tmp_path / "export"
    rows = read_rows(out / "area_1__room_2.csv")
    rows[1][5] = "chair"
    write_rows(out / "area_1__room_2.csv", rows)
    assert (out / "classes.csv") in set(out.glob("*.csv"))
    path, annotations = import_annotations(sorted(out.glob("*.csv")), source, {}, tmp_path / "round_1.pt")
    budget = read_budget(path)
    assert annotations.num_labeled == 1 and list(budget) == ["area_1/room_2"] and budget["area_1/room_2"].tolist() == [0]


def test_next_round_carries_the_labels_file_over(exported):
    source, tmp_path, _ = exported
    first = tmp_path / "a.csv"
    write_rows(first, [["scene", "index", "label"], ["area_1/room_1", "7", "floor"]])
    r1, _ = import_annotations([first], source, PREVIOUS, tmp_path / "r1.pt")
    second = tmp_path / "b.csv"
    write_rows(second, [["scene", "index", "label"], ["area_1/room_1", "9", "wall"]])
    r2, _ = import_annotations([second], source, r1, tmp_path / "r2.pt")
    assert read_budget(r2)["area_1/room_1"].tolist() == [5, 7, 9]
    index, label = read_labels(labels_path(r2))["area_1/room_1"]
    assert index.tolist() == [7, 9] and label.tolist() == [0, 1]


@pytest.mark.parametrize("row, message", [
    (["area_1/room_0", "3", "", "", "", "7"], "unknown class id 7"),
    (["area_1/room_0", "3", "", "", "", "sofa"], "unknown class name 'sofa'"),
    (["area_1/room_0", "500", "", "", "", "1"], "index 500 out of range"),
    (["area_1/room_0", "-1", "", "", "", "1"], "index -1 out of range"),
    (["area_1/room_0", "x", "", "", "", "1"], "is not an integer"),
    (["area_1/room_9", "3", "", "", "", "1"], "unknown scene 'area_1/room_9'"),
    (["area_1/room_0", "1", "", "", "", "1"], "already labeled in the previous budget"),
    (["area_1/room_0", "3", "9", "9", "9", "1"], "do not match point 3"),
])
def test_bad_rows_are_refused_naming_file_and_line(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    write_rows(path, [["scene", "index", "x", "y", "z", "label"], ["area_1/room_0", "4", "", "", "", "1"], row])
    with pytest.raises(AnnotationError, match=message) as error:
        import_annotations([path], TinySource(), PREVIOUS, tmp_path / "new.pt")
    assert f"{path}:3:" in str(error.value)
    assert not (tmp_path / "new.pt").exists() and not labels_path(tmp_path / "new.pt").exists()


def test_duplicates_are_refused_across_files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_rows(a, [["scene", "index", "label"], ["area_1/room_0", "4", "1"]])
    write_rows(b, [["scene", "index", "label"], ["area_1/room_2", "4", "1"], ["area_1/room_0", "4", "2"]])
    with pytest.raises(AnnotationError, match="duplicate") as error:
        import_annotations([a, b], TinySource(), {}, tmp_path / "new.pt")
    assert f"{b}:3: duplicate: point 4 of scene 'area_1/room_0' is already labeled at {a}:2" in str(error.value)


def test_missing_columns_and_files(tmp_path):
    path = tmp_path / "cols.csv"
    write_rows(path, [["scene", "idx", "label"], ["area_1/room_0", "4", "1"]])
    with pytest.raises(AnnotationError, match="missing column"):
        import_annotations([path], TinySource(), {}, tmp_path / "new.pt")
    with pytest.raises(FileNotFoundError):
        import_annotations([tmp_path / "none.csv"], TinySource(), {}, tmp_path / "new.pt")


def test_scene_file_stem():
    assert scene_file_stem("Area_5/office_1") == "Area_5__office_1"
