"""SLidR: superpixel-driven image-to-lidar distillation (Sautier et al., CVPR 2022), and its downstream use.

Pre-training pairs every lidar scan with its calibrated camera images. Points are projected into each image (in
front of the camera and inside its bounds); SLIC cuts each image into superpixels. Per superpixel, the 3D
backbone's point features (through a 64-d projection head) and a frozen image encoder's pixel features (through
a trainable 64-d head, upsampled to the image size) are averaged; an InfoNCE loss (temperature 0.07) makes the
3D embedding of a superpixel pick out the 2D embedding of the same superpixel among those of the batch (at most
4096 pairs). Superpixels that hold fewer than `min_points` points are dropped.

Downstream, the pre-trained 3D backbone initialises a `Supervised` model (fine-tuning on few scans or points), or
stays frozen under a linear classifier (`LinearProbe`). The image encoder is trained beforehand, self-supervised
on the same images, by predicting image rotations (`RotationPretext`, Gidaris et al., ICLR 2018).

Batch layout: `SlidrPairs` wraps a PointDataset built with `keep_raw_coord=True` and adds to each sample's extras
  slidr_images        list of (3, H_c, W_c) uint8 tensors, one per camera
  slidr_superpixels   list of (H_c, W_c) int64 superpixel labels 0 .. S_c - 1
  slidr_pairs         (P, 4) int64 rows [point, camera, row, col]: point (index into the sample's points) lands
                      on pixel (row, col) of camera `camera`
which `collate` turns into one list entry per scene.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pcseg.data.batch import PointBatch
from pcseg.data.camera import Camera
from pcseg.methods.base import MethodConfig
from pcseg.methods.supervised import Supervised
from pcseg.models.image_encoder import ImageEncoder, load_image_encoder, normalize_image
from pcseg.ops import segment_mean
from pcseg.sparse import SparseTensor
from pcseg.superpixels import SuperpixelCache

PAIR_KEYS = ("slidr_images", "slidr_superpixels", "slidr_pairs")


# ------------------------------------------------------------------------------------------- cameras and pairs
def check_camera(camera: Camera, where: str = "camera") -> None:
    """Raise ValueError (prefixed by `where`) for a camera that cannot pair points with pixels: an image that is
    not (H, W, 3) uint8, a missing or non-finite intrinsic (3, 3) / lidar2cam (4, 4), non-positive focal lengths,
    a lidar2cam that is not rigid, or a principal point outside the central half of the image (the image does not
    have the size its calibration was made for)."""
    image = camera.image
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"shape {image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{where}: image must be (H, W, 3) uint8, got {got}")
    for name, shape in (("intrinsic", (3, 3)), ("lidar2cam", (4, 4))):
        matrix = getattr(camera, name)
        if matrix is None:
            raise ValueError(f"{where}: the calibration has no {name} matrix")
        matrix = np.asarray(matrix)
        if matrix.shape != shape or not np.isfinite(matrix).all():
            raise ValueError(f"{where}: {name} must be a finite {shape} matrix, got shape {matrix.shape}")
    K, extrinsic = np.asarray(camera.intrinsic, np.float64), np.asarray(camera.lidar2cam, np.float64)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{where}: focal lengths must be positive, got fx={K[0, 0]:g}, fy={K[1, 1]:g}")
    rotation = extrinsic[:3, :3]
    if not np.allclose(extrinsic[3], [0, 0, 0, 1]) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-3):
        raise ValueError(f"{where}: lidar2cam is not a rigid transform (rotation + translation, last row 0 0 0 1)")
    height, width = image.shape[:2]
    cx, cy = K[0, 2], K[1, 2]
    if not (width / 4 <= cx <= 3 * width / 4 and height / 4 <= cy <= 3 * height / 4):
        raise ValueError(f"{where}: principal point ({cx:.1f}, {cy:.1f}) lies outside the central half of the "
                         f"{width} x {height} image: the image does not have the size its calibration was made "
                         "for (resized or cropped without updating the intrinsics?)")


def pixel_pairs(coord: np.ndarray, camera: Camera) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of coord (N, 3) (lidar frame) seen by `camera`: depth > 0 and inside the image.

    Returns point (P,) int64 indices into coord, row (P,) and col (P,) int64 pixel of each (pixel (row, col)
    covers [col, col + 1) x [row, row + 1) of the projection)."""
    uv, _, inside = camera.project(coord)
    point = np.flatnonzero(inside)
    col = np.minimum(np.floor(uv[point, 0]).astype(np.int64), camera.width - 1)
    row = np.minimum(np.floor(uv[point, 1]).astype(np.int64), camera.height - 1)
    return point.astype(np.int64), row, col


def scale_camera(camera: Camera, scale: float) -> Camera:
    """The camera with its image resized by `scale` (bilinear) and the intrinsics scaled to match."""
    from PIL import Image

    if scale == 1.0:
        return camera
    if scale <= 0:
        raise ValueError(f"image scale must be positive, got {scale}")
    width, height = max(1, round(camera.width * scale)), max(1, round(camera.height * scale))
    image = np.asarray(Image.fromarray(camera.image).resize((width, height), Image.BILINEAR))
    K = np.diag([width / camera.width, height / camera.height, 1.0]) @ np.asarray(camera.intrinsic, np.float64)
    return Camera(camera.name, image, K, np.asarray(camera.lidar2cam, np.float64))


def camera_pairs(coord: np.ndarray, cameras: Sequence[Camera], superpixels: SuperpixelCache,
                 image_scale: float = 1.0, scene_id: str = "scene") -> Dict[str, object]:
    """The SLidR extras of one scene (see the module docstring) from its raw lidar coord (N, 3) and cameras.

    Checks every camera (`check_camera`); warns for a camera that sees none of the points (all behind it or
    outside the image) and gives it no pairs.
    """
    if not cameras:
        raise ValueError(f"scene {scene_id!r} has no camera images (extras['cameras']); SLidR needs image-lidar "
                         "pairs (datasets kitti_object, nuscenes, synthetic_outdoor)")
    images, labels, pairs = [], [], []
    for c, camera in enumerate(cameras):
        where = f"scene {scene_id!r}, camera {camera.name!r}"
        check_camera(camera, where)
        camera = scale_camera(camera, image_scale)
        point, row, col = pixel_pairs(coord, camera)
        if len(point) == 0:
            depth = camera.project(coord)[1]
            reason = ("the scene has no points" if len(coord) == 0 else
                      "all lie behind the camera" if (depth <= 0).all() else "none falls inside the image")
            warnings.warn(f"{where}: no lidar point projects into the {camera.width} x {camera.height} image "
                          f"({len(coord)} points, {reason}); the camera adds no superpixel pairs", RuntimeWarning,
                          stacklevel=2)
        images.append(torch.from_numpy(np.ascontiguousarray(camera.image.transpose(2, 0, 1))))
        labels.append(torch.from_numpy(superpixels(camera.image)))
        pairs.append(np.stack([point, np.full_like(point, c), row, col], axis=1))
    return {"slidr_images": images, "slidr_superpixels": labels,
            "slidr_pairs": torch.from_numpy(np.concatenate(pairs).astype(np.int64))}


class SlidrPairs(torch.utils.data.Dataset):
    """A PointDataset (built with keep_raw_coord=True) whose samples carry SLidR's image-lidar pairs.

    Points are projected with their coordinates as read (`extras["raw_coord"]`), so augmentation of the 3D
    view does not move them in the images. The cameras and raw coordinates leave the extras; the PAIR_KEYS
    entries come in. Indexing, length and the class / channel properties pass through to `dataset`.
    """

    def __init__(self, dataset, superpixels: SuperpixelCache, image_scale: float = 1.0) -> None:
        if not getattr(dataset, "keep_raw_coord", False):
            raise ValueError("SlidrPairs needs a PointDataset built with keep_raw_coord=True (points are projected "
                             "with their coordinates before augmentation)")
        if image_scale <= 0:
            raise ValueError(f"image_scale must be positive, got {image_scale}")
        self.dataset, self.superpixels, self.image_scale = dataset, superpixels, image_scale

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        if name == "dataset":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, item):
        sample = self.dataset[item]
        cameras = sample.extras.pop("cameras", None)
        raw = sample.extras.pop("raw_coord")
        sample.extras.update(camera_pairs(raw.numpy(), cameras or [], self.superpixels, self.image_scale,
                                          sample.scene_id))
        return sample


# ---------------------------------------------------------------------------------------------- pooling + loss
def superpixel_pool(point_feat: torch.Tensor, point_superpixel: torch.Tensor, pixel_feat: torch.Tensor,
                    pixel_superpixel: torch.Tensor, num_superpixels: int, min_points: int = 1
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average point and pixel features per superpixel (pcseg.ops.segment_mean) and keep the superpixels that
    hold at least `min_points` points.

    point_feat (P, D) features of P point-pixel pairs, point_superpixel (P,) int64 their superpixel;
    pixel_feat (Q, D), pixel_superpixel (Q,) int64 the same for pixels; superpixels are 0 .. num_superpixels - 1.
    Returns point_emb (K, D), pixel_emb (K, D) and kept (K,) int64 superpixel ids in increasing order.
    """
    if point_feat.shape[0] != point_superpixel.shape[0] or pixel_feat.shape[0] != pixel_superpixel.shape[0]:
        raise ValueError(f"superpixel_pool: {point_feat.shape[0]} point features vs {point_superpixel.shape[0]} "
                         f"ids, {pixel_feat.shape[0]} pixel features vs {pixel_superpixel.shape[0]} ids")
    counts = torch.bincount(point_superpixel, minlength=num_superpixels)
    kept = torch.nonzero(counts >= max(1, min_points)).flatten()
    point_emb = segment_mean(point_feat, point_superpixel, num_superpixels)[kept]
    pixel_emb = segment_mean(pixel_feat, pixel_superpixel, num_superpixels)[kept]
    return point_emb, pixel_emb, kept


def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE of matching rows: query (K, D) and key (K, D), row i of each describing the same superpixel.

    With q_i, k_j L2-normalised: loss = -1/K sum_i log( exp(q_i . k_i / t) / sum_j exp(q_i . k_j / t) ),
    i.e. cross-entropy of the cosine-similarity logits (K, K) / t against the diagonal.
    """
    if query.shape != key.shape or query.dim() != 2 or query.shape[0] == 0:
        raise ValueError(f"info_nce: query and key must both be (K, D) with K >= 1, got {tuple(query.shape)} and "
                         f"{tuple(key.shape)}")
    if temperature <= 0:
        raise ValueError(f"info_nce: temperature must be positive, got {temperature}")
    dtype = torch.float64 if query.dtype == torch.float64 else torch.float32  # half precision upcast
    logits = F.normalize(query.to(dtype), dim=1) @ F.normalize(key.to(dtype), dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


class InfoNCE(nn.Module):
    """Module form of `info_nce` with a fixed temperature."""

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return info_nce(query, key, self.temperature)


# ------------------------------------------------------------------------------------------------ pre-training
class Slidr(nn.Module):
    """SLidR pre-training of `backbone` (no labels used; num_classes is ignored).

    Losses (training mode): {'slidr': InfoNCE over the kept superpixels of the batch}. The image encoder is
    loaded from `cfg.image_encoder`, frozen and kept in eval mode; the point and image heads are trained.
    """

    @dataclass
    class Config(MethodConfig):
        name: str = "slidr"
        image_encoder: str = field(default="", metadata={
            "help": "checkpoint of the frozen image encoder (`pcseg pretrain-2d` writes one); required"})
        proj_dim: int = field(default=64, metadata={"help": "dimension of the 3D and 2D projection heads"})
        temperature: float = field(default=0.07, metadata={"help": "InfoNCE temperature"})
        max_pairs: int = field(default=4096, metadata={"help": "at most this many superpixel pairs per batch"})
        min_points: int = field(default=5, metadata={"help": "drop superpixels holding fewer points than this"})
        superpixels: str = field(default="slic", metadata={
            "choices": ("slic", "grid"), "help": "SLIC (scikit-image) or a regular grid of cells"})
        n_segments: int = field(default=150, metadata={"help": "superpixels per image (SLIC's target)"})
        compactness: float = field(default=6.0, metadata={"help": "SLIC compactness"})
        sigma: float = field(default=3.0, metadata={"help": "SLIC Gaussian pre-smoothing"})
        superpixel_cache: str = field(default="", metadata={
            "help": "folder of cached superpixels ('' = $PCSEG_CACHE/superpixels or ~/.cache/pcseg/superpixels)"})
        image_scale: float = field(default=1.0, metadata={"help": "resize camera images by this factor"})
        image_channels: Tuple[int, ...] = field(default=(32, 64, 128), metadata={
            "help": "pretrain-2d: channels per stage of the image encoder"})
        image_layers: Tuple[int, ...] = field(default=(1, 1, 1), metadata={
            "help": "pretrain-2d: residual blocks per stage of the image encoder"})
        pretext_steps: int = field(default=600, metadata={"help": "pretrain-2d: optimizer steps"})
        pretext_batch: int = field(default=16, metadata={"help": "pretrain-2d: image crops per step (x4 rotations)"})
        pretext_crop: int = field(default=64, metadata={"help": "pretrain-2d: square crop size in pixels"})
        pretext_lr: float = field(default=0.002, metadata={"help": "pretrain-2d: AdamW learning rate"})

    def __init__(self, backbone: nn.Module, num_classes: int, cfg: "Slidr.Config",
                 image_encoder: Optional[ImageEncoder] = None) -> None:
        super().__init__()
        from pcseg.models import ProjectionHead

        if cfg.proj_dim < 1 or cfg.max_pairs < 1 or cfg.min_points < 1 or cfg.temperature <= 0:
            raise ValueError(f"method: need proj_dim, max_pairs, min_points >= 1 and temperature > 0, got "
                             f"{cfg.proj_dim}, {cfg.max_pairs}, {cfg.min_points}, {cfg.temperature}")
        if image_encoder is None:
            if not cfg.image_encoder:
                raise ValueError("method.image_encoder is empty: give the checkpoint of a pre-trained image "
                                 "encoder (train one with `pcseg pretrain-2d CONFIG`)")
            image_encoder = load_image_encoder(cfg.image_encoder)
        self.cfg = cfg
        self.backbone = backbone
        self.point_head = ProjectionHead(backbone.out_channels, cfg.proj_dim)
        self.image_encoder = image_encoder.requires_grad_(False).eval()
        self.image_head = nn.Conv2d(image_encoder.out_channels, cfg.proj_dim, 1)

    def train(self, mode: bool = True) -> "Slidr":
        super().train(mode)
        self.image_encoder.eval()  # frozen: BatchNorm statistics stay those of the checkpoint
        return self

    def pixel_features(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) uint8 -> (B, proj_dim, H, W): frozen encoder, trainable 1x1 head, bilinear upsampling
        (the head is affine per pixel, so it commutes with the upsampling and runs at the encoder's resolution)."""
        with torch.no_grad():
            feats = self.image_encoder(normalize_image(image))
        return F.interpolate(self.image_head(feats), size=image.shape[2:], mode="bilinear", align_corners=False)

    def embeddings(self, batch: PointBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        """(point_emb (K, D), pixel_emb (K, D)) of the kept superpixels of the batch (K may be 0)."""
        missing = [key for key in PAIR_KEYS if key not in batch.extras]
        if missing:
            raise ValueError(f"SLidR batches need {', '.join(missing)} in extras: wrap the dataset in "
                             "pcseg.methods.slidr.SlidrPairs (`pcseg pretrain` does)")
        device = batch.feat.device
        x = SparseTensor(batch.feat, batch.grid_coord, batch_size=batch.batch_size)
        point_feat = self.point_head(self.backbone(x).feats)[batch.inverse]  # (N, D)

        images = [img for per_scene in batch.extras["slidr_images"] for img in per_scene]
        labels = [sp.to(device) for per_scene in batch.extras["slidr_superpixels"] for sp in per_scene]
        num_sp = [int(sp.max()) + 1 if sp.numel() else 0 for sp in labels]
        sp_start = np.cumsum([0] + num_sp)
        # every camera's superpixels get ids of their own: label + the camera's start
        flat_sp = torch.cat([sp.flatten() + int(start) for sp, start in zip(labels, sp_start)])
        pixel_start = np.cumsum([0] + [sp.numel() for sp in labels])
        widths = torch.tensor([sp.shape[1] for sp in labels], device=device, dtype=torch.int64)

        pairs, camera_start = [], 0
        point_start = [0] + batch.offset[:-1].tolist()
        for b, per_scene in enumerate(batch.extras["slidr_pairs"]):
            shift = torch.tensor([point_start[b], camera_start, 0, 0], device=device)
            pairs.append(per_scene.to(device) + shift)
            camera_start += len(batch.extras["slidr_images"][b])
        pairs = torch.cat(pairs) if pairs else torch.zeros(0, 4, dtype=torch.int64, device=device)
        cam = pairs[:, 1]
        pixel = torch.as_tensor(pixel_start[:-1], device=device)[cam] + pairs[:, 2] * widths[cam] + pairs[:, 3]

        # pixel features, batching cameras of equal size through the encoder
        by_size: Dict[Tuple[int, int], List[int]] = {}
        for c, img in enumerate(images):
            by_size.setdefault(tuple(img.shape[1:]), []).append(c)
        pixel_feat: List[Optional[torch.Tensor]] = [None] * len(images)
        for cams in by_size.values():
            feats = self.pixel_features(torch.stack([images[c] for c in cams]).to(device))
            for c, f in zip(cams, feats):
                pixel_feat[c] = f.flatten(1).T  # (H * W, D)
        pixel_feat_all = torch.cat(pixel_feat) if images else point_feat.new_zeros(0, self.cfg.proj_dim)
        point_emb, pixel_emb, _ = superpixel_pool(point_feat[pairs[:, 0]], flat_sp[pixel], pixel_feat_all, flat_sp,
                                                  int(sp_start[-1]), self.cfg.min_points)
        return point_emb, pixel_emb

    def forward(self, batch: PointBatch) -> Dict[str, torch.Tensor]:
        point_emb, pixel_emb = self.embeddings(batch)
        if len(point_emb) == 0:
            warnings.warn(f"SLidR: no superpixel of the batch {batch.scene_ids} holds {self.cfg.min_points} or more "
                          "projected points; the batch contributes no loss", RuntimeWarning, stacklevel=2)
            return {"slidr": sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0}
        if len(point_emb) > self.cfg.max_pairs:
            chosen = torch.randperm(len(point_emb), device=point_emb.device)[: self.cfg.max_pairs]
            point_emb, pixel_emb = point_emb[chosen], pixel_emb[chosen]
        return {"slidr": info_nce(point_emb, pixel_emb, self.cfg.temperature)}


def backbone_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The `backbone.*` entries of a method's state dict, prefix removed (what fine-tuning starts from)."""
    return {key[len("backbone."):]: value for key, value in state.items() if key.startswith("backbone.")}


# ------------------------------------------------------------------------------------------------ linear probe
class LinearProbe(Supervised):
    """A linear classifier on a frozen backbone: parameters fixed, BatchNorm statistics kept, no backbone gradient.

    Losses (training mode): {'ce'} as Supervised. Built like any method; `pcseg finetune --pretrained CKPT`
    loads the pre-trained backbone into it before training.
    """

    @dataclass
    class Config(Supervised.Config):
        name: str = "linear_probe"

    def __init__(self, backbone: nn.Module, num_classes: int, cfg: "LinearProbe.Config") -> None:
        super().__init__(backbone, num_classes, cfg)
        self.head = nn.Linear(backbone.out_channels, num_classes)
        self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "LinearProbe":
        super().train(mode)
        self.backbone.eval()
        return self

    def voxel_logits(self, batch: PointBatch) -> torch.Tensor:
        x = SparseTensor(batch.feat, batch.grid_coord, batch_size=batch.batch_size)
        with torch.no_grad():
            feats = self.backbone(x).feats
        return self.head(feats)


# ------------------------------------------------------------------------------------- 2D self-supervision
def rotation_batch(images: Sequence[np.ndarray], crop: int, rng: np.random.Generator
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rotation pretext batch: a random crop x crop window of each image (H, W, 3) uint8, randomly mirrored, in
    its four rotations by k * 90 degrees. Returns crops (4B, 3, crop, crop) uint8 and their k (4B,) int64."""
    crops, targets = [], []
    for image in images:
        height, width = image.shape[:2]
        if crop > min(height, width):
            raise ValueError(f"pretext crop {crop} does not fit an image of {width} x {height}; lower "
                             "method.pretext_crop")
        top, left = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
        window = torch.from_numpy(np.ascontiguousarray(image[top:top + crop, left:left + crop].transpose(2, 0, 1)))
        if rng.random() < 0.5:
            window = window.flip(2)
        for k in range(4):
            crops.append(torch.rot90(window, k, dims=(1, 2)))
            targets.append(k)
    return torch.stack(crops), torch.tensor(targets, dtype=torch.int64)


class RotationPretext(nn.Module):
    """Image encoder + linear classifier of the rotation (0, 90, 180, 270 degrees) from globally pooled features.

    forward(crops (B, 3, S, S) uint8, target (B,) int64) -> {'rotation': cross-entropy}; `accuracy` likewise.
    """

    def __init__(self, encoder: ImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.out_channels, 4)

    def logits(self, crops: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(normalize_image(crops)).mean(dim=(2, 3)))

    def forward(self, crops: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"rotation": F.cross_entropy(self.logits(crops), target)}

    @torch.no_grad()
    def accuracy(self, crops: torch.Tensor, target: torch.Tensor) -> float:
        return float((self.logits(crops).argmax(1) == target).float().mean())


__all__ = ["Slidr", "LinearProbe", "SlidrPairs", "InfoNCE", "RotationPretext", "info_nce", "superpixel_pool",
           "check_camera", "pixel_pairs", "scale_camera", "camera_pairs", "rotation_batch", "backbone_state",
           "PAIR_KEYS"]
