"""Superpixels of camera images for SLidR: SLIC (scikit-image) with an on-disk cache, or a regular grid.

SLidR's settings (Sautier et al., CVPR 2022): SLIC with 150 segments, compactness 6, Gaussian smoothing sigma 3.
A segmentation is computed once per image and cached as `<cache_dir>/<key>.npy`, the key a hash of the image
bytes, its shape and the parameters; files are written to a temporary name and renamed, so concurrent loader
workers never read a half-written file. Without scikit-image, `superpixels` falls back to a grid of about
`n_segments` square-ish cells and warns once.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from pcseg.atomic import write_atomic

PathLike = Union[str, os.PathLike]
METHODS = ("slic", "grid")


@dataclass(frozen=True)
class SuperpixelParams:
    """method "slic" | "grid"; n_segments (target count); compactness and sigma (SLIC only)."""

    method: str = "slic"
    n_segments: int = 150
    compactness: float = 6.0
    sigma: float = 3.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"superpixel method must be one of {METHODS}, got {self.method!r}")
        if self.n_segments < 1:
            raise ValueError(f"superpixels: n_segments must be positive, got {self.n_segments}")
        if self.compactness <= 0 or self.sigma < 0:
            raise ValueError(f"superpixels: need compactness > 0 and sigma >= 0, got {self.compactness}, "
                             f"{self.sigma}")


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"superpixels: image must be (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"superpixels: image must be uint8, got {image.dtype}")
    return image


def grid_superpixels(height: int, width: int, n_segments: int = 150) -> np.ndarray:
    """(H, W) int64 labels of a regular grid of about n_segments cells, rows * cols with rows / cols ~ H / W;
    labels are row-major cell indices 0 .. rows * cols - 1."""
    if height < 1 or width < 1:
        raise ValueError(f"grid_superpixels: image size must be positive, got {height} x {width}")
    rows = min(height, max(1, round(math.sqrt(n_segments * height / width))))
    cols = min(width, max(1, round(n_segments / rows)))
    row = np.arange(height) * rows // height
    col = np.arange(width) * cols // width
    return (row[:, None] * cols + col[None, :]).astype(np.int64)


def slic_superpixels(image: np.ndarray, n_segments: int = 150, compactness: float = 6.0, sigma: float = 3.0
                     ) -> np.ndarray:
    """SLIC of image (H, W, 3) uint8 -> (H, W) int64 labels 0 .. S-1 (consecutive, every label used)."""
    from skimage.segmentation import slic

    image = _check_image(image)
    labels = slic(image, n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=0,
                  channel_axis=-1)
    _, consecutive = np.unique(labels, return_inverse=True)
    return consecutive.reshape(labels.shape).astype(np.int64)


def _have_skimage() -> bool:
    return importlib.util.find_spec("skimage") is not None


def resolve_method(method: str) -> str:
    """`method`, or "grid" with a warning when it is "slic" and scikit-image is not installed."""
    if method == "slic" and not _have_skimage():
        warnings.warn("scikit-image is not installed: superpixels fall back to a regular grid of cells "
                      "(pip install scikit-image for SLIC)", RuntimeWarning, stacklevel=2)
        return "grid"
    return method


def compute_superpixels(image: np.ndarray, params: SuperpixelParams) -> np.ndarray:
    """(H, W) int64 consecutive labels of image (H, W, 3) uint8 with `params` (no cache, no fallback)."""
    image = _check_image(image)
    if params.method == "grid":
        return grid_superpixels(image.shape[0], image.shape[1], params.n_segments)
    return slic_superpixels(image, params.n_segments, params.compactness, params.sigma)


def cache_key(image: np.ndarray, params: SuperpixelParams) -> str:
    """Hex digest of the image bytes, its shape and the parameters."""
    image = np.ascontiguousarray(_check_image(image))
    digest = hashlib.sha1()
    digest.update(repr((image.shape, params.method, params.n_segments, float(params.compactness),
                        float(params.sigma))).encode())
    digest.update(image.data)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """$PCSEG_CACHE/superpixels, else $XDG_CACHE_HOME/pcseg/superpixels, else ~/.cache/pcseg/superpixels."""
    if os.environ.get("PCSEG_CACHE"):
        return Path(os.environ["PCSEG_CACHE"]) / "superpixels"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pcseg" / "superpixels"


class SuperpixelCache:
    """Superpixels computed once per (image, parameters) and kept as .npy files in `directory`.

    directory  cache folder (created on first write); None = `default_cache_dir()`
    params     SuperpixelParams; "slic" without scikit-image becomes "grid" with a warning
    `cache(image)` -> (H, W) int64 labels 0 .. S-1. A cached file that is unreadable or does not match the image
    size is recomputed and replaced.
    """

    def __init__(self, directory: Optional[PathLike] = None, params: SuperpixelParams = SuperpixelParams()) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.params = SuperpixelParams(resolve_method(params.method), params.n_segments, params.compactness,
                                       params.sigma)

    def path(self, image: np.ndarray) -> Path:
        return self.directory / f"{cache_key(image, self.params)}.npy"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = _check_image(image)
        path = self.path(image)
        if path.is_file():
            try:
                labels = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                labels = None
            if labels is not None and labels.shape == image.shape[:2] and labels.dtype == np.int64:
                return labels
        labels = compute_superpixels(image, self.params)
        write_atomic(path, lambda handle: np.save(handle, labels, allow_pickle=False))
        return labels


__all__ = ["SuperpixelParams", "SuperpixelCache", "compute_superpixels", "slic_superpixels", "grid_superpixels",
           "cache_key", "default_cache_dir", "resolve_method"]
