"""Headless rendering of a scene's layers to one PNG: a grid with one row per view and one column per layer.

Backends, tried in this order by `backend="auto"`:
  "filament"  Open3D's OffscreenRenderer (Vulkan; lavapipe on CPU: Debian's libvulkan1 + mesa-vulkan-drivers)
  "legacy"    Open3D's legacy Visualizer with an invisible window (EGL offscreen, or an X display / xvfb-run)
  "numpy"     a z-buffered point splatter in numpy: needs nothing, always works
Open3D backends run in a child process (`python -m pcseg.vis.render`): the OffscreenRenderer aborts the whole
process when no Vulkan/EGL driver exists, so a failure there only costs the child, and the next backend is tried.
All backends use the same pinhole camera (`view_camera`), so their pictures agree.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from pcseg.atomic import write_atomic

from .layers import LAYER_TITLES, SceneLayers
from .palettes import Palette

VIEWS = ("bev", "perspective")
VIEW_TITLES = {"bev": "bird's-eye", "perspective": "perspective"}
BACKENDS = ("filament", "legacy", "numpy")
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in OpenCV convention (x right, y down, z forward).

    intrinsic (3, 3) float64, extrinsic (4, 4) float64 world -> camera, image width x height pixels
    """

    intrinsic: np.ndarray
    extrinsic: np.ndarray
    width: int
    height: int

    def project(self, coord: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """coord (N, 3) -> (uv (N, 2) float64 pixel coordinates, depth (N,) float64 along the view axis)."""
        cam = np.asarray(coord, np.float64) @ self.extrinsic[:3, :3].T + self.extrinsic[:3, 3]
        depth = cam[:, 2]
        safe = np.where(depth > 1e-9, depth, 1.0)
        uv = (cam[:, :2] / safe[:, None]) * np.diag(self.intrinsic)[:2] + self.intrinsic[:2, 2]
        return uv, depth


def _look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    ext = np.eye(4)
    ext[:3, :3] = np.stack([right, down, forward])
    ext[:3, 3] = -ext[:3, :3] @ eye
    return ext


def view_camera(view: str, coord: np.ndarray, width: int, height: int) -> Camera:
    """A fixed camera for `view` that frames the points (z is up).

    "bev": straight down, +x to the right and +y up in the image, 20 degree field of view (nearly orthographic).
    "perspective": from the -x/-y side, 55 degrees above the horizon (so it sees over walls into a room),
    45 degree field of view.
    The points are centred on the camera's right/down axes and fit the image with 5% to spare; with more than
    1000 points the extremes are the 0.5/99.5 percentiles, so a few far lidar returns do not shrink the scene.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; choose from {', '.join(VIEWS)}")
    if view == "bev":
        fov, forward, up = np.radians(20.0), np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])
    else:
        elev, azim = np.radians(55.0), np.radians(-120.0)
        fov, up = np.radians(45.0), np.array([0.0, 0.0, 1.0])
        forward = -np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    eye, target = _frame(np.asarray(coord, np.float64), forward, up, np.tan(fov / 2), width / height)
    focal = (height / 2) / np.tan(fov / 2)
    intrinsic = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], np.float64)
    return Camera(intrinsic, _look_at(eye, target, up), width, height)


def _frame(coord, forward, up, tan_half, aspect, margin=1.05, max_points=20000):
    """Eye and target for a camera looking along `forward`: the points' extent on the camera's right/down axes
    is centred, and every point (up to the outlier percentiles) projects inside the image."""
    if len(coord) > max_points:  # a fixed, evenly spaced subset keeps this fast and deterministic
        coord = coord[np.linspace(0, len(coord) - 1, max_points).astype(np.int64)]
    q = (0.5, 99.5) if len(coord) > 1000 else (0.0, 100.0)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    center = coord.mean(0)
    target = center.copy()
    for axis in (right, down):
        lo, hi = np.percentile(coord @ axis, q)
        target += ((lo + hi) / 2 - center @ axis) * axis
    rel = coord - target
    # a point at camera offsets (x, y, z) is inside when |x| <= (z + dist) * tan_half * aspect, and the same for y
    need = np.maximum(np.abs(rel @ right) / aspect, np.abs(rel @ down)) * margin / tan_half - rel @ forward
    dist = np.percentile(need, q[1])
    return target - forward * max(dist, 1e-3), target


def auto_point_size(num_points: int, width: int, height: int) -> int:
    """A splat size in pixels that closes the gaps between points without smearing the scene: 1 .. 7."""
    return int(np.clip(round(1.2 * np.sqrt(width * height / max(num_points, 1))), 1, 7))


def rasterize(
    coord: np.ndarray,
    colors: np.ndarray,
    camera: Camera,
    point_size: int,
    markers: Optional[np.ndarray] = None,
    marker_size: Optional[int] = None,
) -> np.ndarray:
    """The numpy backend: square splats with a z-buffer (the nearest point wins each pixel).

    coord (N, 3), colors (N, 3) float in [0, 1], markers (N,) bool drawn as marker_size splats -> (H, W, 3) uint8.
    """
    w, h = camera.width, camera.height
    uv, depth = camera.project(coord)
    rgb = np.round(np.clip(colors, 0, 1) * 255).astype(np.uint8)
    sizes = np.full(len(coord), point_size, np.int64)
    if markers is not None:
        sizes[markers] = marker_size if marker_size is not None else 3 * point_size
    front = depth > 1e-6
    if markers is not None:  # pull markers towards the camera by their own half width: neighbours do not cover them
        depth = np.where(markers, depth * (1 - sizes / 2 / camera.intrinsic[0, 0]), depth)
    pix_all, depth_all, index_all = [], [], []
    for size in np.unique(sizes[front]):
        idx = np.nonzero(front & (sizes == size))[0]
        offsets = np.arange(size) - (size - 1) // 2
        du, dv = np.meshgrid(offsets, offsets, indexing="xy")
        u = np.round(uv[idx, 0])[:, None].astype(np.int64) + du.ravel()[None]
        v = np.round(uv[idx, 1])[:, None].astype(np.int64) + dv.ravel()[None]
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        pix_all.append((v * w + u)[inside])
        depth_all.append(np.broadcast_to(depth[idx, None], u.shape)[inside])
        index_all.append(np.broadcast_to(idx[:, None], u.shape)[inside])
    image = np.empty((h * w, 3), np.uint8)
    image[:] = BACKGROUND
    if pix_all:
        pix, dep, index = np.concatenate(pix_all), np.concatenate(depth_all), np.concatenate(index_all)
        order = np.lexsort((dep, pix))
        pix, index = pix[order], index[order]
        first = np.ones(len(pix), bool)
        first[1:] = pix[1:] != pix[:-1]
        image[pix[first]] = rgb[index[first]]
    return image.reshape(h, w, 3)


@dataclass
class RenderJob:
    """Everything a backend needs: coord (N, 3) float32, colors (P, N, 3) uint8 per panel, markers (P, N) bool,
    one camera per view, splat sizes in pixels."""

    coord: np.ndarray
    colors: np.ndarray
    markers: np.ndarray
    cameras: List[Camera]
    point_size: int
    marker_size: int

    def save(self, path: Path) -> None:
        np.savez(
            path, coord=self.coord, colors=self.colors, markers=self.markers,
            intrinsic=np.stack([c.intrinsic for c in self.cameras]),
            extrinsic=np.stack([c.extrinsic for c in self.cameras]),
            size=np.array([self.cameras[0].width, self.cameras[0].height, self.point_size, self.marker_size]),
        )

    @classmethod
    def load(cls, path: Path) -> "RenderJob":
        with np.load(path) as z:
            w, h, point_size, marker_size = (int(x) for x in z["size"])
            cameras = [Camera(k, e, w, h) for k, e in zip(z["intrinsic"], z["extrinsic"])]
            return cls(z["coord"], z["colors"], z["markers"], cameras, point_size, marker_size)


def _render_numpy(job: RenderJob) -> np.ndarray:
    """-> images (V, P, H, W, 3) uint8."""
    return np.stack([
        np.stack([
            rasterize(job.coord, job.colors[p] / 255.0, cam, job.point_size, job.markers[p], job.marker_size)
            for p in range(len(job.colors))
        ])
        for cam in job.cameras
    ])


def _marker_radius(job: RenderJob, cam: Camera) -> float:
    """World radius that makes a marker about marker_size pixels wide at the scene's median depth."""
    _, depth = cam.project(job.coord)
    return float(job.marker_size / 2 * np.median(depth[depth > 0]) / cam.intrinsic[0, 0])


def _toward_camera(points: np.ndarray, cam: Camera, distance: float) -> np.ndarray:
    """points (K, 3) moved `distance` towards the camera centre, so that markers are not hidden by the points
    around them at the same depth."""
    center = -cam.extrinsic[:3, :3].T @ cam.extrinsic[:3, 3]
    ray = center - points
    return points + ray / np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-12) * distance


def _render_filament(job: RenderJob) -> np.ndarray:
    from .o3d_utils import MAX_MARKERS, point_cloud, require_open3d

    o3d = require_open3d()
    rendering = o3d.visualization.rendering
    cam0 = job.cameras[0]
    renderer = rendering.OffscreenRenderer(cam0.width, cam0.height)
    renderer.scene.set_background([c / 255 for c in BACKGROUND] + [1.0])
    renderer.scene.view.set_post_processing(False)  # no tone mapping: pixels keep the palette's exact colours
    renderer.scene.view.set_antialiasing(False)  # and no blending at splat borders
    renderer.scene.view.set_sample_count(1)
    base = rendering.MaterialRecord()
    base.shader = "defaultUnlit"
    base.point_size = float(job.point_size)
    big = rendering.MaterialRecord()
    big.shader = "defaultUnlit"
    big.point_size = float(job.marker_size)
    images = np.empty((len(job.cameras), len(job.colors), cam0.height, cam0.width, 3), np.uint8)
    for p in range(len(job.colors)):
        renderer.scene.clear_geometry()
        colors = job.colors[p] / 255.0
        marked = job.markers[p] if job.markers[p].sum() <= MAX_MARKERS else np.zeros(len(job.coord), bool)
        renderer.scene.add_geometry("points", point_cloud(o3d, job.coord[~marked], colors[~marked]), base)
        for v, cam in enumerate(job.cameras):
            if marked.any():
                lifted = _toward_camera(job.coord[marked], cam, _marker_radius(job, cam))
                if renderer.scene.has_geometry("markers"):
                    renderer.scene.remove_geometry("markers")
                renderer.scene.add_geometry("markers", point_cloud(o3d, lifted, colors[marked]), big)
            # Filament puts pixel centres at +0.5 (ours: at integer coordinates), so shift the principal point
            intrinsic = cam.intrinsic.copy()
            intrinsic[:2, 2] += 0.5
            renderer.setup_camera(intrinsic, cam.extrinsic, cam.width, cam.height)
            images[v, p] = np.asarray(renderer.render_to_image())[..., :3]
    return images


def _render_legacy(job: RenderJob) -> np.ndarray:
    from .o3d_utils import MAX_MARKERS, marker_mesh, point_cloud, require_open3d

    o3d = require_open3d()
    cam0 = job.cameras[0]
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(width=cam0.width, height=cam0.height, visible=False):
        raise RuntimeError("Open3D's legacy Visualizer could not create a window (no display and no EGL)")
    option = vis.get_render_option()
    option.point_size = float(job.point_size)
    option.background_color = np.asarray(BACKGROUND, np.float64) / 255
    option.light_on = False  # flat colours, like the other backends
    control = vis.get_view_control()
    images = np.empty((len(job.cameras), len(job.colors), cam0.height, cam0.width, 3), np.uint8)
    for p in range(len(job.colors)):
        colors = job.colors[p] / 255.0
        marked = job.markers[p] if job.markers[p].sum() <= MAX_MARKERS else np.zeros(len(job.coord), bool)
        for v, cam in enumerate(job.cameras):
            vis.clear_geometries()
            vis.add_geometry(point_cloud(o3d, job.coord[~marked], colors[~marked]))
            if marked.any():
                radius = _marker_radius(job, cam)
                lifted = _toward_camera(job.coord[marked], cam, radius)
                vis.add_geometry(marker_mesh(o3d, lifted, colors[marked], radius))
            params = o3d.camera.PinholeCameraParameters()
            params.intrinsic = o3d.camera.PinholeCameraIntrinsic(cam.width, cam.height, cam.intrinsic)
            params.extrinsic = cam.extrinsic
            control.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True)
            vis.poll_events()
            vis.update_renderer()
            buffer = np.asarray(vis.capture_screen_float_buffer(do_render=True))
            images[v, p] = np.round(np.clip(buffer, 0, 1) * 255).astype(np.uint8)
    vis.destroy_window()
    return images


def _child_env() -> Dict[str, str]:
    """The environment for the child: this pcseg importable even when it is not installed."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _render_in_child(job: RenderJob, backend: str, timeout: float) -> np.ndarray:
    """Run an Open3D backend in a child process; raise RuntimeError with the child's last output on failure."""
    with tempfile.TemporaryDirectory(prefix="pcseg-render-") as tmp:
        job_path, out_path = Path(tmp) / "job.npz", Path(tmp) / "images.npy"
        job.save(job_path)
        cmd = [sys.executable, "-m", "pcseg.vis.render", "--backend", backend, str(job_path), str(out_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_child_env())
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{backend}: no image after {timeout:.0f} s") from None
        if proc.returncode != 0 or not out_path.exists():
            tail = "\n".join((proc.stderr + proc.stdout).strip().splitlines()[-6:])
            how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            raise RuntimeError(f"{backend}: renderer process failed ({how}):\n{tail}")
        return np.load(out_path)


def render_images(
    job: RenderJob, backend: str = "auto", timeout: float = 300.0
) -> Tuple[np.ndarray, str]:
    """Render a job with `backend` ("auto" tries filament, legacy, numpy in turn) -> (images (V, P, H, W, 3)
    uint8, the backend that produced them). Falling back warns with the reason."""
    order = BACKENDS if backend == "auto" else (backend,)
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}")
    failures = []
    for name in order:
        if name == "numpy":
            images = _render_numpy(job)
        else:
            try:
                images = _render_in_child(job, name, timeout)
            except RuntimeError as exc:
                failures.append(str(exc))
                continue
            if (images == np.asarray(BACKGROUND, np.uint8)).all():
                failures.append(f"{name}: rendered only background (broken driver?)")
                continue
        if failures:
            warnings.warn("falling back to the " + name + " renderer:\n" + "\n".join(failures), stacklevel=2)
        return images, name
    raise RuntimeError("no renderer worked:\n" + "\n".join(failures))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


HEADER = 22  # title strip above each panel, pixels


def panel_box(row: int, col: int, width: int, height: int) -> Tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive ends, of panel (row, col) of `compose`'s grid of width x height panels."""
    x, y = col * (width + 1), row * (height + HEADER) + HEADER
    return x, y, x + width, y + height


def compose(
    images: np.ndarray,
    row_titles: Sequence[str],
    col_titles: Sequence[str],
    legend: Sequence[Tuple[str, Tuple[int, int, int]]] = (),
) -> np.ndarray:
    """images (V, P, H, W, 3) uint8 -> one (rows, cols) grid image with a title strip above every panel
    (panel positions: `panel_box`), one-pixel grey separators and a legend of colour swatches at the bottom.
    -> (H', W', 3) uint8."""
    from PIL import Image, ImageDraw

    n_rows, n_cols, h, w, _ = images.shape
    font = _font(14)
    canvas = Image.new("RGB", (n_cols * (w + 1) - 1, n_rows * (h + HEADER)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r in range(n_rows):
        for c in range(n_cols):
            x, y, _, _ = panel_box(r, c, w, h)
            canvas.paste(Image.fromarray(images[r, c]), (x, y))
            title = f"{col_titles[c]} - {row_titles[r]}" if row_titles[r] else col_titles[c]
            draw.text((x + 6, y - HEADER + 4), title, fill=(0, 0, 0), font=font)
            if c:
                draw.line([(x - 1, y - HEADER), (x - 1, y + h)], fill=(160, 160, 160))
        if r:
            draw.line([(0, r * (h + HEADER)), (canvas.width, r * (h + HEADER))], fill=(160, 160, 160))
    if legend:
        canvas = _append_legend(canvas, legend, font)
    return np.asarray(canvas)


def _append_legend(canvas, legend, font):
    from PIL import Image, ImageDraw

    measure = ImageDraw.Draw(canvas)
    items, x, y, line_h, pad = [], 8, 6, 20, 8
    for name, color in legend:
        width = 16 + 4 + int(measure.textlength(name, font=font)) + 14
        if x + width > canvas.width and x > 8:
            x, y = 8, y + line_h
        items.append((x, y, name, color))
        x += width
    strip = Image.new("RGB", (canvas.width, y + line_h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for x, y, name, color in items:
        draw.rectangle([x, y + 2, x + 15, y + 15], fill=tuple(int(c) for c in color), outline=(90, 90, 90))
        draw.text((x + 20, y + 1), name, fill=(0, 0, 0), font=font)
    out = Image.new("RGB", (canvas.width, canvas.height + strip.height), (255, 255, 255))
    out.paste(canvas, (0, 0))
    out.paste(strip, (0, canvas.height))
    return out


def _legend_entries(
    layers: SceneLayers, panels: Sequence[str], keep: np.ndarray
) -> List[Tuple[str, Tuple[int, int, int]]]:
    """Swatches for the classes drawn (visible points of the gt/pred/labeled panels) and the error/pick colours."""
    from .layers import CORRECT_COLOR, DIM_COLOR, ERROR_COLOR, IGNORED_COLOR, PICK_COLOR

    def u8(rgb):
        return tuple(int(round(c * 255)) for c in rgb)

    present = set()
    if "gt" in panels:
        present.update(np.unique(layers.label[keep]).tolist())
    if "pred" in panels:
        present.update(np.unique(layers.pred[keep]).tolist())
    if "labeled" in panels and layers.label is not None:
        present.update(np.unique(layers.label[keep & layers.labeled]).tolist())
    entries = [
        (layers.palette.class_names[k], tuple(int(c) for c in layers.palette.colors[k]))
        for k in sorted(present) if k >= 0
    ]
    if "error" in panels:
        entries += [("wrong", u8(ERROR_COLOR)), ("correct", u8(CORRECT_COLOR)), ("no label", u8(IGNORED_COLOR))]
    if "labeled" in panels:
        entries += [("not in the budget", u8(DIM_COLOR))]
    if "picked" in panels:
        entries += [("picked", u8(PICK_COLOR)), ("not picked", u8(DIM_COLOR))]
    return entries


def write_png(path: Union[str, Path], image: np.ndarray) -> Path:
    """image (H, W, 3) uint8 -> PNG at `path`, written atomically (temp file + rename); returns the path."""
    from PIL import Image

    return write_atomic(path, lambda handle: Image.fromarray(image).save(handle, format="PNG"))


@dataclass(frozen=True)
class RenderResult:
    """path: the PNG written; backend: the renderer that drew it; shape: the PNG's (height, width);
    cameras: view -> Camera; boxes: (view, panel) -> (x0, y0, x1, y1) of that panel in the PNG."""

    path: Path
    backend: str
    shape: Tuple[int, int]
    cameras: Dict[str, Camera]
    boxes: Dict[Tuple[str, str], Tuple[int, int, int, int]]


def render_png(
    path: Union[str, Path],
    scene,
    *,
    pred: Optional[np.ndarray] = None,
    uncertainty: Optional[np.ndarray] = None,
    labeled: Optional[np.ndarray] = None,
    picked: Optional[np.ndarray] = None,
    dataset: Optional[str] = None,
    palette: Optional[Palette] = None,
    views: Sequence[str] = VIEWS,
    panels: Sequence[str] = ("gt", "pred", "error"),
    panel_size: Tuple[int, int] = (480, 360),
    point_size: Optional[int] = None,
    hide_above: Optional[float] = None,
    hide_classes: Sequence[Union[int, str]] = (),
    legend: bool = True,
    backend: str = "auto",
    timeout: float = 300.0,
) -> RenderResult:
    """Render a scene's layers headless and write one PNG: rows = views, columns = panels.

    scene        a `pcseg.data.Scene` (coord, color, label) or a ready `SceneLayers` (then pred ... dataset
                 must be left out)
    pred         (N,) int predictions; uncertainty (N,) float; labeled / picked: point indices or (N,) bool masks
    dataset      palette name ("scannet", "s3dis", "semantickitti"; else a generated palette)
    palette      class colours and names (overrides `dataset`), e.g. get_palette(name, class_names=...)
    views        "bev" and/or "perspective"
    panels       layers among "color", "gt", "pred", "error", "labeled", "picked", "uncertainty"; a panel
                 whose data is missing is an error
    panel_size   (width, height) of each panel in pixels
    point_size   splat size in pixels (default from point count and panel size)
    hide_above   hide points with z above this value
    hide_classes hide points of these classes (indices or names, by ground truth), e.g. ("ceiling",)
    backend      "auto" (filament -> legacy -> numpy) or one of them; see the module docstring
    Writes the PNG atomically and returns a RenderResult.
    """
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"render_png: unknown render backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}")
    if isinstance(scene, SceneLayers):
        if any(a is not None for a in (pred, uncertainty, labeled, picked, dataset, palette)):
            raise ValueError("render_png: with a SceneLayers, pass pred, labeled, palette, ... inside it")
        layers = scene
    else:
        layers = SceneLayers.from_scene(
            scene, pred=pred, uncertainty=uncertainty, labeled=labeled, picked=picked, dataset=dataset,
            palette=palette,
        )
    if not views or not panels:
        raise ValueError("render_png: need at least one view and one panel")
    width, height = (int(x) for x in panel_size)
    if width < 16 or height < 16:
        raise ValueError(f"render_png: panel_size must be at least 16 x 16 pixels, got {panel_size}")
    keep = layers.visible(hide_above, hide_classes)
    colors, markers = [], []
    for panel in panels:
        rgb, mark = layers.colors(panel)
        colors.append(np.round(rgb[keep] * 255).astype(np.uint8))
        markers.append(mark[keep] if mark is not None else np.zeros(int(keep.sum()), bool))
    coord = layers.coord[keep]
    cameras = {view: view_camera(view, coord, width, height) for view in views}
    size = point_size if point_size is not None else auto_point_size(len(coord), width, height)
    job = RenderJob(coord, np.stack(colors), np.stack(markers), list(cameras.values()), size, max(7, 3 * size))
    images, used = render_images(job, backend, timeout)
    grid = compose(
        images,
        [VIEW_TITLES[v] for v in views],
        [LAYER_TITLES[p] for p in panels],
        _legend_entries(layers, panels, keep) if legend else (),
    )
    path = write_png(path, grid)
    boxes = {(v, p): panel_box(r, c, width, height) for r, v in enumerate(views) for c, p in enumerate(panels)}
    return RenderResult(path, used, grid.shape[:2], cameras, boxes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Child-process entry: render JOB.npz with an Open3D backend into OUT.npy (images (V, P, H, W, 3) uint8)."""
    parser = argparse.ArgumentParser(prog="python -m pcseg.vis.render", description=main.__doc__)
    parser.add_argument("--backend", choices=("filament", "legacy"), required=True)
    parser.add_argument("job", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    job = RenderJob.load(args.job)
    images = _render_filament(job) if args.backend == "filament" else _render_legacy(job)
    np.save(args.out, images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
