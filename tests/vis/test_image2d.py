"""The 2D panel PNG: image | CAM | pseudo mask | prediction."""
import numpy as np
import pytest

from pcseg.vis import get_palette, render_panel_2d, save_panel_2d
from pcseg.vis.image2d import cam_overlay
from pcseg.vis.palettes import IGNORE_COLOR
from pcseg.vis.render import panel_box

PIL = pytest.importorskip("PIL.Image", reason="Pillow writes the PNG")


def test_panels_show_the_masks(tmp_path):
    h, w = 40, 60
    image = np.full((h, w, 3), 0.5, np.float32)
    pseudo = np.full((h, w), -1)
    pseudo[10:30, 10:30] = 2
    pred = np.zeros((h, w), np.int64)
    pred[:, 30:] = 1
    cam = np.zeros((8, 12), np.float32)
    cam[2:6, 2:6] = 1.0
    palette = get_palette("s3dis")
    path = save_panel_2d(tmp_path / "p.png", image, cam=cam, pseudo_mask=pseudo, pred=pred, palette=palette)
    out = np.asarray(PIL.open(path).convert("RGB"))
    panels = [out[y0:y1, x0:x1] for x0, y0, x1, y1 in (panel_box(0, c, w, h) for c in range(4))]
    np.testing.assert_array_equal(panels[0], 128)
    np.testing.assert_array_equal(panels[2][15, 15], palette.colors[2])
    np.testing.assert_array_equal(panels[2][0, 0], IGNORE_COLOR)
    np.testing.assert_array_equal(panels[3][5, 5], palette.colors[0])
    np.testing.assert_array_equal(panels[3][5, 45], palette.colors[1])
    # the CAM heat is hot (red-dominant) where the map is high and cold (blue-dominant) where it is low
    hot, cold = panels[1][20, 20].astype(int), panels[1][35, 55].astype(int)
    assert hot[0] > hot[2] and cold[2] > cold[0]
    assert out.shape[0] > h + 22  # title strip and legend


def test_cam_overlay_resizes_and_normalises():
    image = np.zeros((16, 16, 3), np.uint8)
    flat = cam_overlay(image, np.full((4, 4), 7.0))
    assert flat.shape == (16, 16, 3) and len(np.unique(flat.reshape(-1, 3), axis=0)) == 1


def test_bad_inputs():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="image's shape"):
        render_panel_2d(image, pred=np.zeros((5, 5), np.int64))
    with pytest.raises(ValueError, match="channels-first"):
        render_panel_2d(np.zeros((3, 10, 10), np.float32))
    with pytest.raises(ValueError, match="pick one class"):
        render_panel_2d(image, cam=np.zeros((2, 5, 5)))
