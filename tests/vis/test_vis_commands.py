"""`pcseg visualize --save` and `pcseg export` from files, predictions, budgets and dataset scenes."""
import numpy as np
import pytest
from plyfile import PlyData

from pcseg.vis import get_palette
from pcseg.vis.commands import main

PIL = pytest.importorskip("PIL.Image", reason="Pillow writes the PNG")


@pytest.fixture
def room_files(tmp_path, room):
    scene, pred, wrong = room
    npz = tmp_path / "room.npz"
    np.savez(npz, coord=scene.coord, color=scene.color, label=scene.label, scene_id="test_room", dataset="scannet")
    np.save(tmp_path / "pred.npy", pred)
    return npz, tmp_path / "pred.npy"


def test_export_then_visualize(tmp_path, room, room_files, capsys):
    scene, pred, wrong = room
    npz, pred_npy = room_files
    ply = tmp_path / "out" / "room.ply"
    assert main(["export", str(npz), "--pred", str(pred_npy), "-o", str(ply)]) == 0
    v = PlyData.read(str(ply))["vertex"].data
    np.testing.assert_array_equal(v["pred"], pred)
    np.testing.assert_array_equal(v["label"], scene.label)
    rgb = np.stack([v["red"], v["green"], v["blue"]], 1)
    np.testing.assert_array_equal(rgb, np.round(get_palette("scannet").colorize(pred) * 255))

    from pcseg.weak.budget import write_budget

    labeled = np.flatnonzero(scene.label == 6)[:4]  # four table points
    write_budget({"test_room": labeled}, tmp_path / "budget.pth")
    png = tmp_path / "room.png"
    code = main(["visualize", str(ply), "--budget", str(tmp_path / "budget.pth"), "--save", str(png),
                 "--panels", "error,labeled", "--views", "bev", "--panel-size", "160x120", "--backend", "numpy"])
    assert code == 0 and "numpy renderer" in capsys.readouterr().out
    image = np.asarray(PIL.open(png).convert("RGB"))
    table = get_palette("scannet").colors[6]
    assert (image == (255, 0, 0)).all(axis=2).sum() > 20  # the wrong half of the table
    assert (image == table).all(axis=2).sum() >= 4 * 9  # the labeled points as markers


def test_dataset_scene(tmp_path, capsys):
    pytest.importorskip("pcseg.data")
    ply = tmp_path / "d.ply"
    assert main(["export", "--data", "synthetic_indoor", "--split", "val", "--scene-id", "indoor_val_0000",
                 "-o", str(ply), "--color-by", "color"]) == 0
    ply_data = PlyData.read(str(ply))
    assert "pcseg scene_id=indoor_val_0000" in ply_data.comments
    assert any(c.startswith("pcseg classes=floor,wall,ceiling") for c in ply_data.comments)
    assert len(ply_data["vertex"].data) > 1000


def test_user_errors_print_one_line(tmp_path, room_files, capsys):
    npz, pred_npy = room_files
    np.save(tmp_path / "short.npy", np.zeros(5, np.int64))
    cases = [
        (["export", "-o", str(tmp_path / "x.ply")], "either a scene file or --data"),
        (["export", str(npz), "--pred", str(tmp_path / "short.npy"), "-o", str(tmp_path / "x.ply")],
         "expected shape (8000,)"),
        (["visualize", str(tmp_path / "missing.ply"), "--save", str(tmp_path / "x.png")], "does not exist"),
        (["visualize", str(npz), "--save", str(tmp_path / "x.png"), "--panels", "pred"], "needs predictions"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("x.*"))
