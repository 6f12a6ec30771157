"""The in-memory image sample and batch of the 2D branch (the counterparts of Scene and PointBatch)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch

IGNORE_INDEX = -1


@dataclass
class ImageSample:
    """One image with its segmentation mask and image-level labels (numpy, CPU).

    image        (3, H, W) float32 RGB in [0, 1]
    label        (H, W) int64: 0 = background, k = foreground class k (1..K), -1 = ignore / unannotated
    image_labels (K,) float32 multi-hot over the K foreground classes (entry k - 1 for class k)
    image_id     str, unique within its dataset
    """

    image: np.ndarray
    label: np.ndarray
    image_labels: np.ndarray
    image_id: str

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[0] != 3:
            raise ValueError(f"image {self.image_id!r}: image must be (3, H, W), got {self.image.shape}")
        if self.label.shape != self.image.shape[1:]:
            raise ValueError(f"image {self.image_id!r}: label {self.label.shape} does not match image "
                             f"{self.image.shape[1:]}")
        if self.image_labels.ndim != 1:
            raise ValueError(f"image {self.image_id!r}: image_labels must be (K,), got {self.image_labels.shape}")


@dataclass
class ImageBatch:
    """B images of one size stacked (torch).

    image        (B, 3, H, W) float32
    label        (B, H, W) int64, -1 = ignore
    image_labels (B, K) float32
    image_ids    list of B str
    """

    image: torch.Tensor
    label: torch.Tensor
    image_labels: torch.Tensor
    image_ids: List[str]

    @property
    def batch_size(self) -> int:
        return len(self.image_ids)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "ImageBatch":
        def move(value):
            return value.to(device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value

        return ImageBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


def collate_images(samples: Sequence[ImageSample]) -> ImageBatch:
    """Stack samples of equal size into an ImageBatch."""
    if not samples:
        raise ValueError("collate_images: empty list of samples")
    shapes = {s.image.shape for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"collate_images: images differ in size {sorted(shapes)}; resize them (e.g. size=...)")
    return ImageBatch(
        image=torch.from_numpy(np.stack([s.image for s in samples])),
        label=torch.from_numpy(np.stack([s.label for s in samples])),
        image_labels=torch.from_numpy(np.stack([s.image_labels for s in samples])),
        image_ids=[s.image_id for s in samples],
    )


def labels_from_mask(label: np.ndarray, num_classes: int, min_pixels: int = 1) -> np.ndarray:
    """Image-level labels (K,) float32, K = num_classes - 1: class k is present when it covers >= min_pixels
    pixels of `label` (H, W) int64 (background 0 and ignore -1 never count)."""
    if label.size and label.max() >= num_classes:
        raise ValueError(f"label value {int(label.max())} out of range for num_classes={num_classes}")
    counts = np.bincount(label[label > 0].ravel(), minlength=num_classes)
    return (counts[1:] >= min_pixels).astype(np.float32)



class TrainImages:
    """Training view of an image dataset for the engine's Trainer: items are addressed by (index, item_seed) keys
    (pcseg.engine.sampler.ResumableBatchSampler) or plain indices, and with `flip` a sample is mirrored left-right
    when its seed says so, so augmentation is a pure function of the key."""

    def __init__(self, dataset: Sequence[ImageSample], flip: bool = True):
        self.dataset, self.flip = dataset, flip
        self.num_classes = getattr(dataset, "num_classes", None)
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> ImageSample:
        index, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.dataset[index]
        if self.flip and seed is not None and np.random.default_rng(seed).random() < 0.5:
            sample = ImageSample(image=np.ascontiguousarray(sample.image[:, :, ::-1]),
                                 label=np.ascontiguousarray(sample.label[:, ::-1]),
                                 image_labels=sample.image_labels, image_id=sample.image_id)
        return sample
