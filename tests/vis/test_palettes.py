"""Palettes: official colours and class order, colorize, the generated palette, the legend."""
import io

import numpy as np
import pytest

from pcseg.vis.palettes import (
    IGNORE_COLOR, S3DIS, SCANNET, SEMANTICKITTI, format_legend, generated_palette, get_palette, print_legend,
    semantickitti_palette_from_yaml,
)


def test_semantickitti_matches_official_yaml(shared_data):
    from_yaml = semantickitti_palette_from_yaml(shared_data / "meta" / "semantickitti" / "semantic-kitti.yaml")
    assert from_yaml.class_names == SEMANTICKITTI.class_names
    np.testing.assert_array_equal(from_yaml.colors, SEMANTICKITTI.colors)
    # the yaml stores BGR: car is [245, 150, 100] there, a blue in RGB
    assert tuple(SEMANTICKITTI.colors[SEMANTICKITTI.class_names.index("car")]) == (100, 150, 245)


def test_class_order_matches_official_lists_and_readers(shared_data):
    s3dis = (shared_data / "meta" / "s3dis" / "class_names.txt").read_text().split()
    assert S3DIS.class_names == tuple(s3dis)
    rows = (shared_data / "meta" / "scannet" / "classes_SemVoxLabel-nyu40id.txt").read_text().splitlines()
    scannet = [row.split(None, 1)[1].strip().replace("refridgerator", "refrigerator") for row in rows if row.strip()]
    assert SCANNET.class_names == tuple(scannet)
    data = pytest.importorskip("pcseg.data")
    assert SCANNET.class_names == data.SCANNET_CLASSES
    assert S3DIS.class_names == data.S3DIS_CLASSES
    assert SEMANTICKITTI.class_names == data.SEMANTICKITTI_CLASSES


def test_known_colours():
    assert tuple(SCANNET.colors[SCANNET.class_names.index("wall")]) == (174, 199, 232)
    assert tuple(SCANNET.colors[SCANNET.class_names.index("shower curtain")]) == (158, 218, 229)
    assert tuple(S3DIS.colors[S3DIS.class_names.index("chair")]) == (255, 0, 0)
    for palette in (SCANNET, S3DIS, SEMANTICKITTI):
        assert len({tuple(c) for c in palette.colors}) == palette.num_classes


def test_colorize_and_errors():
    rgb = S3DIS.colorize(np.array([0, 12, -1]))
    np.testing.assert_allclose(rgb * 255, [[0, 255, 0], [50, 50, 50], IGNORE_COLOR])
    assert rgb.dtype == np.float32
    with pytest.raises(ValueError, match="13 classes"):
        S3DIS.colorize(np.array([13]))
    with pytest.raises(ValueError, match="must be \\(N,\\)"):
        S3DIS.colorize(np.zeros((2, 2), np.int64))


def test_generated_palette_is_distinct_and_deterministic():
    a, b = generated_palette(40), generated_palette(40)
    np.testing.assert_array_equal(a.colors, b.colors)
    assert len({tuple(c) for c in a.colors}) == 40
    diffs = np.abs(a.colors[:, None].astype(int) - a.colors[None].astype(int)).sum(-1)
    assert diffs[~np.eye(40, dtype=bool)].min() >= 20  # no two classes look the same
    assert (a.colors.astype(int).sum(1) < 3 * 245).all()  # none vanishes on the white background
    assert (np.abs(a.colors.astype(int) - [255, 0, 0]).sum(1) > 60).all()  # none passes for the error colour
    np.testing.assert_array_equal(generated_palette(12).colors, a.colors[:12])
    named = generated_palette(3, ["a", "b", "c"])
    np.testing.assert_array_equal(named.colors, generated_palette(3).colors)
    with pytest.raises(ValueError, match="2 class names for 3"):
        generated_palette(3, ["a", "b"])


def test_get_palette():
    assert get_palette("ScanNet_v2") is SCANNET and get_palette("semantic-kitti") is SEMANTICKITTI
    assert get_palette("synthetic_indoor", 5).name == "generated"
    assert get_palette(None, class_names=["x", "y"]).class_names == ("x", "y")
    with pytest.raises(ValueError, match="20 classes"):
        get_palette("scannet", 13)
    with pytest.raises(ValueError, match="num_classes"):
        get_palette("mystery")


def test_legend_plain_and_ansi():
    text = format_legend(S3DIS, classes=[8])
    assert text == "  8  #ff0000  chair"
    assert "\x1b[48;2;255;0;0m" in format_legend(S3DIS, classes=[8], ansi=True)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    plain, tty = io.StringIO(), Tty()
    print_legend(SCANNET, file=plain)
    print_legend(SCANNET, file=tty)
    assert "\x1b[" not in plain.getvalue() and "otherfurniture" in plain.getvalue()
    assert tty.getvalue().count("\x1b[48;2;") == 20
