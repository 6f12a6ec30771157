"""The Open3D window (layer switching, captured offscreen) and `pcseg visualize` without Open3D or a display."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pcseg.vis import SceneLayers, export_scene_ply, get_palette

REPO = Path(__file__).resolve().parents[2]


def _run(code_or_args, env_path=(), timeout=180):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, env_path), str(REPO)])
    args = ["-c", textwrap.dedent(code_or_args)] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def no_open3d(tmp_path):
    """A folder whose open3d module fails to import, as on a machine without Open3D; put it on PYTHONPATH."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "open3d.py").write_text("raise ModuleNotFoundError(\"No module named 'open3d'\")\n")
    return fake


def test_visualize_without_open3d_prints_install_instructions(tmp_path, room, no_open3d):
    scene, pred, _ = room
    ply = export_scene_ply(tmp_path / "room.ply", scene, pred=pred, dataset="scannet")
    proc = _run(["-m", "pcseg.vis.commands", "visualize", str(ply)], env_path=[no_open3d])
    assert proc.returncode == 2, proc.stderr
    assert "pip install open3d-cpu" in proc.stderr and "libusb-1.0-0" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_visualize_api_without_open3d_raises_install_instructions(room, monkeypatch):
    from pcseg.vis import Open3DUnavailable, visualize

    monkeypatch.setitem(sys.modules, "open3d", None)  # `import open3d` now fails as if it were not installed
    scene, pred, _ = room
    with pytest.raises(Open3DUnavailable, match="pip install open3d-cpu") as info:
        visualize(scene, pred=pred)
    assert isinstance(info.value, ImportError)


def test_save_png_works_without_open3d(tmp_path, room, no_open3d):
    scene, pred, _ = room
    ply = export_scene_ply(tmp_path / "room.ply", scene, pred=pred, dataset="scannet")
    out = tmp_path / "room.png"
    proc = _run(["-m", "pcseg.vis.commands", "visualize", str(ply), "--save", str(out), "--panel-size", "120x90"],
                env_path=[no_open3d])
    assert proc.returncode == 0, proc.stderr
    assert "numpy renderer" in proc.stdout and "falling back" in proc.stderr
    assert out.is_file()


def test_visualize_without_display_says_how_to_render(room, monkeypatch):
    from pcseg.vis import visualize
    from pcseg.vis import window

    scene, pred, _ = room
    monkeypatch.setattr(window, "require_open3d", lambda: None)  # the display check, with or without Open3D
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(window.sys, "platform", "linux")
    with pytest.raises(RuntimeError, match="--save"):
        visualize(scene, pred=pred)
    with pytest.raises(ValueError, match="not available"):
        visualize(scene, pred=pred, layer="picked")


def test_layer_window_switches_layers(tmp_path, room, require_renderer):
    require_renderer("legacy")
    scene, pred, wrong = room
    np.savez(tmp_path / "room.npz", coord=scene.coord, color=scene.color, label=scene.label, pred=pred)
    proc = _run(f"""
        import numpy as np
        from pcseg.vis import SceneLayers, get_palette
        from pcseg.vis.window import LayerWindow
        z = np.load({str(tmp_path / "room.npz")!r})
        layers = SceneLayers(z["coord"], get_palette("scannet"), color=z["color"], label=z["label"], pred=z["pred"],
                             labeled=np.flatnonzero(z["label"] == 1)[:5])
        window = LayerWindow(layers, visible=False, width=320, height=240, start="gt")
        shots, order = {{}}, []
        for _ in layers.available():
            shots[window.current] = window.capture()
            order.append(window.current)
            window.step(1)
        assert window.current == "gt", window.current  # cycled all the way round
        window.show("error")
        np.savez({str(tmp_path / "shots.npz")!r}, again=window.capture(), **shots)
        window.close()
        print(",".join(order))
        """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "gt,pred,error,labeled,color"  # SPACE/N order, from "gt"
    shots = np.load(tmp_path / "shots.npz")
    palette = get_palette("scannet")

    def count(image, rgb):
        return int((image == np.asarray(rgb, np.uint8)).all(axis=2).sum())

    assert count(shots["gt"], palette.colors[0]) > 100 and count(shots["gt"], palette.colors[6]) > 20
    assert (shots["gt"] != shots["pred"]).any(axis=2).sum() > 20  # the wrong table half changed colour
    red = count(shots["error"], (255, 0, 0))
    assert 20 < red < count(shots["error"], (158, 158, 158))
    np.testing.assert_array_equal(shots["again"], shots["error"])
    assert count(shots["labeled"], palette.colors[1]) > 10  # markers on five floor points
    assert count(shots["labeled"], palette.colors[0]) == 0  # everything else dimmed
    assert not np.array_equal(shots["color"], shots["gt"])


def test_scene_layers_validation(room):
    scene, pred, _ = room
    with pytest.raises(ValueError, match="point indices must lie"):
        SceneLayers.from_scene(scene, labeled=np.array([scene.num_points]))
    with pytest.raises(ValueError, match="unknown layer"):
        SceneLayers.from_scene(scene).colors("depth")
    layers = SceneLayers.from_scene(scene, pred=pred, uncertainty=np.linspace(0, 1, scene.num_points))
    assert layers.available() == ("color", "gt", "pred", "error", "uncertainty")
    heat, _ = layers.colors("uncertainty")
    assert heat[0, 2] > heat[0, 0] and heat[-1, 0] > heat[-1, 2]  # low = blue, high = red
