"""Fixtures of the visualization tests: a small room with one known wrong region, and Open3D renderer probes."""
import subprocess
import sys

import numpy as np
import pytest

from pcseg.data.scene import Scene

WALL, FLOOR, CABINET, CHAIR, TABLE = 0, 1, 2, 4, 6  # ScanNet classes (tests check them against the palette)


def _box(rng, lo, hi, n):
    return rng.uniform(lo, hi, (n, 3)).astype(np.float32)


@pytest.fixture
def room():
    """(scene, pred, wrong): a 4 x 3 m room (floor, two walls, table, chair, cabinet, some unlabeled points);
    the prediction is right except on the table's left half (predicted as chair). wrong (N,) bool."""
    rng = np.random.default_rng(0)
    parts = [
        (_box(rng, [0, 0, 0], [4, 3, 0.02], 3000), FLOOR),
        (_box(rng, [0, 0, 0], [4, 0.05, 2.4], 1200), WALL),
        (_box(rng, [0, 0, 0], [0.05, 3, 2.4], 1200), WALL),
        (_box(rng, [1.5, 1.0, 0.70], [2.7, 2.0, 0.75], 1200), TABLE),
        (_box(rng, [0.5, 2.1, 0.0], [1.0, 2.6, 0.9], 500), CHAIR),
        (_box(rng, [3.0, 0.3, 0.0], [3.8, 0.9, 1.8], 700), CABINET),
        (_box(rng, [3.2, 2.2, 0.0], [3.6, 2.6, 0.5], 200), -1),
    ]
    coord = np.concatenate([p for p, _ in parts])
    label = np.concatenate([np.full(len(p), k, np.int64) for p, k in parts])
    color = rng.uniform(0.3, 0.7, coord.shape).astype(np.float32)
    pred = np.where(label < 0, FLOOR, label)
    wrong = (label == TABLE) & (coord[:, 0] < 2.1)
    pred[wrong] = CHAIR
    return Scene(coord, color, label, "test_room"), pred, wrong


_PROBES = {
    "filament": "import open3d as o3d\n"
                "r = o3d.visualization.rendering.OffscreenRenderer(32, 32)\n"
                "r.render_to_image()\n",
    "legacy": "import open3d as o3d\n"
              "v = o3d.visualization.Visualizer()\n"
              "assert v.create_window(width=32, height=32, visible=False), 'no window'\n"
              "v.destroy_window()\n",
}


@pytest.fixture(scope="session")
def require_renderer():
    """require_renderer(name) skips the test unless Open3D's `name` renderer ("filament", "legacy") works on this
    machine: probed once per session in a child process, with a minimal Open3D script and no pcseg code, so that
    a bug in pcseg fails the test instead of skipping it."""
    results = {}

    def require(name: str) -> None:
        if name not in results:
            try:
                proc = subprocess.run([sys.executable, "-c", _PROBES[name]], capture_output=True, text=True,
                                      timeout=120)
                lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
                results[name] = (proc.returncode == 0, lines[-1])
            except subprocess.TimeoutExpired:
                results[name] = (False, "timed out")
        ok, why = results[name]
        if not ok:
            pytest.skip(f"Open3D {name} renderer unavailable here ({why}); it needs open3d and Debian's libusb-1.0-0 "
                        f"libgl1 libegl1 libgomp1 libvulkan1 mesa-vulkan-drivers")

    return require
