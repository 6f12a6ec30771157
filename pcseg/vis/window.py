"""An interactive Open3D window over a scene with switchable layers (colour, ground truth, prediction, errors,
labeled points, active-learning picks, uncertainty).

Keys: SPACE or N next layer, B previous layer, 1-9 a layer by its number, L print the legend again;
Open3D's own keys keep working (mouse to orbit/pan/zoom, +/- point size, R reset the view, Q/ESC quit).
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence, Union

import numpy as np

from .layers import LAYER_TITLES, SceneLayers
from .o3d_utils import MAX_MARKERS, marker_mesh, point_cloud, require_open3d
from .palettes import Palette, print_legend


class LayerWindow:
    """Open3D's legacy Visualizer showing one layer of `layers` at a time.

    layers       what to show; the layers offered are `layers.available()`
    start        first layer (default "pred" when available, else "gt", else the first available)
    visible      False renders into an invisible window (EGL offscreen without a display): for tests and capture
    keep         (N,) bool points to draw (see SceneLayers.visible), None = all
    """

    def __init__(
        self,
        layers: SceneLayers,
        *,
        start: Optional[str] = None,
        point_size: float = 2.0,
        width: int = 1280,
        height: int = 800,
        visible: bool = True,
        keep: Optional[np.ndarray] = None,
        title: str = "pcseg",
    ) -> None:
        self.o3d = require_open3d()
        self.layers = layers
        self.names = layers.available()
        if not self.names:
            raise ValueError("nothing to show: the scene has no colours, labels, predictions or other layers")
        if start is None:
            start = next((n for n in ("pred", "gt") if n in self.names), self.names[0])
        if start not in self.names:
            raise ValueError(f"layer {start!r} is not available for this scene; available: {', '.join(self.names)}")
        self.keep = np.ones(layers.num_points, bool) if keep is None else keep
        coord = layers.coord[self.keep]
        extent = np.linalg.norm(coord.max(0) - coord.min(0))
        self.marker_radius = max(extent * 0.008, 1e-4)
        self.vis = self.o3d.visualization.VisualizerWithKeyCallback()
        if not self.vis.create_window(window_name=title, width=width, height=height, visible=visible):
            raise RuntimeError("Open3D could not create a window (no display and no EGL); use --save PNG instead")
        option = self.vis.get_render_option()
        option.point_size = float(point_size)
        option.background_color = np.ones(3)
        option.light_on = False
        self.cloud = point_cloud(self.o3d, coord, np.zeros_like(coord))
        self.vis.add_geometry(self.cloud)
        self.markers = None
        self.current = start
        self._register_keys()
        self.show(start)

    def _register_keys(self) -> None:
        self.vis.register_key_callback(ord(" "), lambda vis: self.step(1))
        self.vis.register_key_callback(ord("N"), lambda vis: self.step(1))
        self.vis.register_key_callback(ord("B"), lambda vis: self.step(-1))
        self.vis.register_key_callback(ord("L"), lambda vis: self._legend())
        for i, name in enumerate(self.names[:9]):
            self.vis.register_key_callback(ord("1") + i, lambda vis, name=name: self.show(name))

    def show(self, name: str) -> bool:
        """Switch to layer `name`; returns True (Open3D's "redraw" flag for key callbacks)."""
        if name not in self.names:
            raise ValueError(f"layer {name!r} is not available; available: {', '.join(self.names)}")
        colors, marked = self.layers.colors(name)
        self.cloud.colors = self.o3d.utility.Vector3dVector(np.asarray(colors[self.keep], np.float64))
        self.vis.update_geometry(self.cloud)
        if self.markers is not None:
            self.vis.remove_geometry(self.markers, reset_bounding_box=False)
            self.markers = None
        if marked is not None:
            marked = marked[self.keep]
            if 0 < marked.sum() <= MAX_MARKERS:
                self.markers = marker_mesh(
                    self.o3d, self.layers.coord[self.keep][marked], colors[self.keep][marked], self.marker_radius
                )
                self.vis.add_geometry(self.markers, reset_bounding_box=False)
        self.current = name
        print(f"[pcseg] layer {self.names.index(name) + 1}/{len(self.names)}: {LAYER_TITLES[name]}", flush=True)
        return True

    def step(self, delta: int) -> bool:
        """Show the next (delta=1) or previous (delta=-1) layer."""
        return self.show(self.names[(self.names.index(self.current) + delta) % len(self.names)])

    def _legend(self) -> bool:
        print_legend(self.layers.palette)
        return False

    def capture(self) -> np.ndarray:
        """Render the current view -> (H, W, 3) uint8."""
        self.vis.poll_events()
        self.vis.update_renderer()
        buffer = np.asarray(self.vis.capture_screen_float_buffer(do_render=True))
        return np.round(np.clip(buffer, 0, 1) * 255).astype(np.uint8)

    def run(self) -> None:
        """Hand control to the user until the window is closed."""
        self.vis.run()
        self.vis.destroy_window()

    def close(self) -> None:
        self.vis.destroy_window()


def has_display() -> bool:
    """Whether a window can be shown: always on macOS/Windows, on Linux only with an X or Wayland display."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def visualize(
    scene,
    *,
    pred: Optional[np.ndarray] = None,
    uncertainty: Optional[np.ndarray] = None,
    labeled: Optional[np.ndarray] = None,
    picked: Optional[np.ndarray] = None,
    dataset: Optional[str] = None,
    palette: Optional[Palette] = None,
    layer: Optional[str] = None,
    point_size: float = 2.0,
    hide_above: Optional[float] = None,
    hide_classes: Sequence[Union[int, str]] = (),
    width: int = 1280,
    height: int = 800,
) -> None:
    """Open an Open3D window on a scene and block until it is closed.

    scene   a `pcseg.data.Scene` or a `SceneLayers` (then pred ... dataset must be left out)
    pred (N,) int; uncertainty (N,) float; labeled / picked: point indices or (N,) bool masks
    dataset palette name, or palette: class colours and names; layer: the first layer shown
    hide_above / hide_classes: see SceneLayers.visible
    Prints the legend and the keys. Raises Open3DUnavailable (with install instructions) without Open3D and
    RuntimeError without a display.
    """
    if isinstance(scene, SceneLayers):
        if any(a is not None for a in (pred, uncertainty, labeled, picked, dataset, palette)):
            raise ValueError("visualize: with a SceneLayers, pass pred, labeled, palette, ... inside it")
        layers = scene
    else:
        layers = SceneLayers.from_scene(
            scene, pred=pred, uncertainty=uncertainty, labeled=labeled, picked=picked, dataset=dataset,
            palette=palette,
        )
    if layer is not None and layer not in layers.available():
        raise ValueError(f"layer {layer!r} is not available for this scene; available: {', '.join(layers.available())}")
    require_open3d()
    if not has_display():
        raise RuntimeError(
            "no display to open a window on (DISPLAY is not set). Render to a file instead "
            "(`pcseg visualize ... --save scene.png` or pcseg.vis.render_png), or use ssh -X / a desktop session."
        )
    keep = layers.visible(hide_above, hide_classes)
    print_legend(layers.palette)
    names = layers.available()
    print("[pcseg] layers: " + ", ".join(f"{i + 1}={LAYER_TITLES[n]}" for i, n in enumerate(names)))
    print("[pcseg] keys: SPACE/N next layer, B previous, 1-9 pick a layer, L legend, +/- point size, Q quit")
    window = LayerWindow(layers, start=layer, point_size=point_size, width=width, height=height, keep=keep)
    window.run()
