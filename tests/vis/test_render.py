"""Offscreen rendering: pixels of the GT | prediction | errors grid, cameras, the z-buffer, backend fallback."""
import numpy as np
import pytest

from pcseg.vis import SceneLayers, get_palette, render_png
from pcseg.vis import render as render_mod
from pcseg.vis.layers import CORRECT_COLOR, ERROR_COLOR, IGNORED_COLOR
from pcseg.vis.palettes import IGNORE_COLOR

PIL = pytest.importorskip("PIL.Image", reason="Pillow composes the PNG")
POINT_SIZE = 3
SCANNET = get_palette("scannet")
WALL, FLOOR, CABINET, CHAIR, TABLE = (SCANNET.class_names.index(n) for n in ("wall", "floor", "cabinet", "chair",
                                                                            "table"))


def _u8(rgb):
    return tuple(int(round(c * 255)) for c in rgb)


def _count(panel, color):
    return int((panel == np.asarray(color, np.uint8)).all(axis=2).sum())


def _near(result, view, coord, pad):
    """(H, W) bool: pixels within `pad` of the projection of `coord` in `view`."""
    cam = result.cameras[view]
    uv, depth = cam.project(coord)
    uv = np.round(uv[depth > 0]).astype(np.int64)
    mask = np.zeros((cam.height, cam.width), bool)
    for du in range(-pad, pad + 1):
        for dv in range(-pad, pad + 1):
            u, v = uv[:, 0] + du, uv[:, 1] + dv
            inside = (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
            mask[v[inside], u[inside]] = True
    return mask


@pytest.mark.parametrize("backend", ["numpy", "filament", "legacy"])
def test_render_png_pixels(backend, room, tmp_path, require_renderer):
    if backend != "numpy":
        require_renderer(backend)
    scene, pred, wrong = room
    out = tmp_path / "room.png"
    result = render_png(out, scene, pred=pred, dataset="scannet", panel_size=(240, 180), point_size=POINT_SIZE,
                        backend=backend)
    assert result.backend == backend
    image = np.asarray(PIL.open(out).convert("RGB"))
    assert image.shape[:2] == result.shape
    for view in ("bev", "perspective"):
        gt, pr, err = (image[y0:y1, x0:x1] for x0, y0, x1, y1 in
                       (result.boxes[(view, p)] for p in ("gt", "pred", "error")))
        for panel in (gt, pr, err):  # not blank: a good share of the panel is covered by points
            assert (panel != 255).any(axis=2).mean() > 0.15
        for k in (WALL, FLOOR, TABLE, CHAIR, CABINET):
            assert _count(gt, SCANNET.colors[k]) > 10, f"{view}: class {k} colour missing from the GT panel"
        assert _count(gt, IGNORE_COLOR) > 10  # the unlabeled block
        wrong_area = _near(result, view, scene.coord[wrong], pad=POINT_SIZE + 1)
        red = (err == np.asarray(_u8(ERROR_COLOR), np.uint8)).all(axis=2)
        assert red.sum() > 50, f"{view}: no error colour in the error panel"
        assert not (red & ~wrong_area).any(), f"{view}: error colour outside the wrong region"
        assert _count(err, _u8(CORRECT_COLOR)) > 1000 and _count(err, _u8(IGNORED_COLOR)) > 10
        differ = (gt != pr).any(axis=2)  # where the prediction is wrong, or there is no ground truth to match
        allowed = wrong_area | _near(result, view, scene.coord[scene.label < 0], pad=POINT_SIZE + 1)
        assert differ.any() and not (differ & ~allowed).any(), f"{view}: GT and prediction differ elsewhere"
    if backend != "numpy":  # same cameras and splats: the Open3D picture matches the numpy one almost pixel for pixel
        reference = render_png(tmp_path / "numpy.png", scene, pred=pred, dataset="scannet", panel_size=(240, 180),
                               point_size=POINT_SIZE, backend="numpy")
        assert (np.asarray(PIL.open(reference.path).convert("RGB")) != image).any(axis=2).mean() < 0.01


def test_fallback_to_numpy_when_open3d_fails(room, tmp_path, monkeypatch):
    scene, pred, _ = room

    def broken(job, backend, timeout):
        raise RuntimeError(f"{backend}: renderer process failed (killed by signal 6)")

    monkeypatch.setattr(render_mod, "_render_in_child", broken)
    with pytest.warns(UserWarning, match="falling back to the numpy renderer"):
        result = render_png(tmp_path / "a.png", scene, pred=pred, panel_size=(64, 48))
    assert result.backend == "numpy" and result.path.is_file()
    with pytest.raises(RuntimeError, match="no renderer worked"):
        render_png(tmp_path / "b.png", scene, pred=pred, panel_size=(64, 48), backend="filament")
    assert not (tmp_path / "b.png").exists()


def test_blank_open3d_output_is_rejected(room, tmp_path, monkeypatch):
    scene, pred, _ = room

    def blank(job, backend, timeout):
        v, p = len(job.cameras), len(job.colors)
        return np.full((v, p, job.cameras[0].height, job.cameras[0].width, 3), 255, np.uint8)

    monkeypatch.setattr(render_mod, "_render_in_child", blank)
    with pytest.warns(UserWarning, match="only background"):
        assert render_png(tmp_path / "a.png", scene, pred=pred, panel_size=(64, 48)).backend == "numpy"


def test_cameras_frame_the_scene(room):
    scene, _, _ = room
    for view in ("bev", "perspective"):
        cam = render_mod.view_camera(view, scene.coord, 320, 240)
        uv, depth = cam.project(scene.coord)
        inside = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < 320) & (uv[:, 1] >= 0) & (uv[:, 1] < 240)
        assert inside.mean() > 0.99
        spread = uv.max(0) - uv.min(0)
        assert spread[0] > 0.6 * 320 or spread[1] > 0.6 * 240  # fills the image, not a dot in the middle
    bev = render_mod.view_camera("bev", scene.coord, 320, 240)
    uv, _ = bev.project(np.array([[0.0, 1.5, 0.0], [4.0, 1.5, 0.0], [2.0, 0.0, 0.0], [2.0, 3.0, 0.0]]))
    assert uv[1, 0] > uv[0, 0]  # +x to the right
    assert uv[3, 1] < uv[2, 1]  # +y up


def test_rasterize_nearest_point_wins():
    cam = render_mod.view_camera("bev", np.array([[-1.0, -1, 0], [1, 1, 1]]), 32, 32)
    coord = np.array([[0.0, 0.0, 0.2], [0.0, 0.0, 0.8], [0.9, 0.9, 0.0]])  # two points on one ray, higher = nearer
    colors = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    image = render_mod.rasterize(coord, colors, cam, point_size=1)
    uv, _ = cam.project(coord)
    u, v = np.round(uv).astype(int).T
    assert tuple(image[v[1], u[1]]) == (0, 0, 255)
    assert tuple(image[v[2], u[2]]) == (0, 255, 0)
    assert (image != 255).any(axis=2).sum() == 2
    big = render_mod.rasterize(coord, colors, cam, point_size=3)
    assert (big != 255).any(axis=2).sum() == 18


def test_markers_and_hidden_classes(room, tmp_path):
    scene, pred, _ = room
    labeled = np.flatnonzero(scene.label == CHAIR)[:3]
    result = render_png(tmp_path / "m.png", scene, labeled=labeled, dataset="scannet", views=("bev",),
                        panels=("gt", "labeled"), panel_size=(240, 180), point_size=1, hide_classes=("table",),
                        backend="numpy")
    image = np.asarray(PIL.open(result.path).convert("RGB"))
    gt = image[slice(*result.boxes[("bev", "gt")][1::2]), slice(*result.boxes[("bev", "gt")][0::2])]
    lab = image[slice(*result.boxes[("bev", "labeled")][1::2]), slice(*result.boxes[("bev", "labeled")][0::2])]
    assert _count(gt, SCANNET.colors[TABLE]) == 0 and _count(gt, SCANNET.colors[CHAIR]) > 0
    assert _count(lab, SCANNET.colors[CHAIR]) >= 3 * 49 // 2  # three 7 x 7 markers, partly overlapping at most
    assert _count(lab, SCANNET.colors[WALL]) == 0
    with pytest.raises(ValueError, match="hide every point"):
        render_png(tmp_path / "x.png", scene, hide_above=-5.0, backend="numpy")


def test_bad_requests_name_the_problem(room, tmp_path):
    scene, pred, _ = room
    with pytest.raises(ValueError, match="predictions"):
        render_png(tmp_path / "x.png", scene, panels=("pred",), backend="numpy")
    with pytest.raises(ValueError, match="unknown view"):
        render_png(tmp_path / "x.png", scene, pred=pred, views=("side",), backend="numpy")
    with pytest.raises(ValueError, match="pred must have shape"):
        render_png(tmp_path / "x.png", scene, pred=pred[:10], backend="numpy")
    with pytest.raises(ValueError, match="unknown render backend"):
        render_png(tmp_path / "x.png", scene, pred=pred, backend="vtk")
    layers = SceneLayers.from_scene(scene, pred=pred)
    with pytest.raises(ValueError, match="inside"):
        render_png(tmp_path / "x.png", layers, pred=pred)
