"""Open3D import with an install hint, and the geometry builders the window and the renderers share."""
from __future__ import annotations

import numpy as np

INSTALL_HINT = (
    "Open3D is needed here but could not be imported{reason}.\n"
    "Install it into this environment with\n"
    "    pip install open3d-cpu          (x86_64; or: pip install 'pcseg[open3d]', or open3d on other machines)\n"
    "On Debian/Ubuntu it also needs system libraries:\n"
    "    apt-get install libusb-1.0-0 libgl1 libegl1 libgomp1          (to import and open a window)\n"
    "    apt-get install libvulkan1 mesa-vulkan-drivers                (for offscreen rendering without a GPU)\n"
    "PNG rendering (`--save`) and PLY export still work without Open3D."
)
MAX_MARKERS = 20000  # above this many marked points, markers are drawn as ordinary points


class Open3DUnavailable(ImportError):
    """Open3D is missing or cannot load its shared libraries; the message says how to install it."""


def require_open3d():
    """Import and return the open3d module, or raise Open3DUnavailable with install instructions."""
    try:
        import open3d
    except (ImportError, OSError) as exc:  # OSError: a shared library (libusb, libGL) is missing
        raise Open3DUnavailable(INSTALL_HINT.format(reason=f" ({type(exc).__name__}: {exc})")) from None
    return open3d


def point_cloud(o3d, coord: np.ndarray, colors: np.ndarray):
    """coord (N, 3), colors (N, 3) float in [0, 1] -> open3d.geometry.PointCloud."""
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(coord, np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64))
    return pcd


def marker_mesh(o3d, centers: np.ndarray, colors: np.ndarray, radius: float):
    """One small sphere per marker: centers (K, 3), colors (K, 3) float in [0, 1] -> open3d TriangleMesh."""
    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=4)
    verts = np.asarray(sphere.vertices)
    tris = np.asarray(sphere.triangles)
    k, v = len(centers), len(verts)
    all_verts = (np.asarray(centers, np.float64)[:, None, :] + verts[None]).reshape(-1, 3)
    all_tris = (tris[None] + (np.arange(k) * v)[:, None, None]).reshape(-1, 3)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(all_verts), o3d.utility.Vector3iVector(all_tris))
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.repeat(np.asarray(colors, np.float64), v, axis=0))
    return mesh
