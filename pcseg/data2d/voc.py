"""PASCAL VOC-format segmentation data.

Layout under `root` (e.g. VOCdevkit/VOC2012):
    JPEGImages/<id>.jpg                      RGB image
    SegmentationClass/<id>.png               class mask: indexed (P-mode) PNG with the VOC palette, 255 = ignore
    Annotations/<id>.xml                     objects (<object><name>cat</name>...) -> image-level labels
    ImageSets/Segmentation/<split>.txt       one id per line (ImageSets/Main/<split>.txt for classification)
Masks stored as RGB images with the palette's colours (as many tools save them) are mapped back through the palette.
In memory the ignore value 255 becomes -1.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from pcseg.data2d.image import IGNORE_INDEX, ImageSample, labels_from_mask

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
VOC_IGNORE_VALUE = 255


def voc_palette() -> np.ndarray:
    """(256, 3) uint8 colours of the VOC palette: the bits of index i spread over r, g, b from the top bit down."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, rgb = i, [0, 0, 0]
        for bit in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        palette[i] = rgb
    return palette


def read_image(path: Union[str, Path]) -> np.ndarray:
    """(3, H, W) float32 RGB in [0, 1] from any image file PIL reads."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0


def read_voc_mask(path: Union[str, Path], num_classes: int = len(VOC_CLASSES)) -> np.ndarray:
    """(H, W) int64 class mask from a VOC PNG; 255 -> -1.

    P-mode and L-mode files hold class indices directly. RGB(A) files are mapped through the VOC palette (index i
    has colour voc_palette()[i]; the ignore colour is palette entry 255); any other colour is an error.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask not found: {path}")
    with Image.open(path) as im:
        if im.mode in ("P", "L"):
            index = np.asarray(im, dtype=np.int64)
        elif im.mode in ("RGB", "RGBA"):
            index = _rgb_to_index(np.asarray(im.convert("RGB")), num_classes, path)
        else:
            raise ValueError(f"{path}: unsupported mask mode {im.mode!r} (need P, L or RGB)")
    bad = (index >= num_classes) & (index != VOC_IGNORE_VALUE)
    if bad.any():
        raise ValueError(f"{path}: class value {int(index[bad][0])} outside 0..{num_classes - 1} and not 255")
    return np.where(index == VOC_IGNORE_VALUE, IGNORE_INDEX, index)


def _rgb_to_index(rgb: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    palette = voc_palette().astype(np.int64)
    valid = list(range(num_classes)) + [VOC_IGNORE_VALUE]
    code_of = {int((palette[i] << np.array([16, 8, 0])).sum()): i for i in valid}
    code = (rgb.astype(np.int64) << np.array([16, 8, 0])).sum(axis=-1)
    uniq, inverse = np.unique(code, return_inverse=True)
    unknown = [int(c) for c in uniq if int(c) not in code_of]
    if unknown:
        colours = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in unknown[:5]]
        raise ValueError(f"{path}: colours {colours} are not VOC palette entries for {num_classes} classes")
    return np.array([code_of[int(c)] for c in uniq], dtype=np.int64)[inverse].reshape(code.shape)


def read_voc_xml_labels(path: Union[str, Path], class_names: Sequence[str] = VOC_CLASSES) -> np.ndarray:
    """Image-level labels (K,) float32 over the foreground classes class_names[1:] from an Annotations XML."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: invalid XML: {err}") from None
    labels = np.zeros(len(class_names) - 1, dtype=np.float32)
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in class_names[1:]:
            raise ValueError(f"{path}: unknown object class {name!r}")
        labels[class_names.index(name) - 1] = 1.0
    return labels


def _resize(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear image / nearest mask resize to (size, size)."""
    from PIL import Image

    im = Image.fromarray((image.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    lab = Image.fromarray(label.astype(np.int32)).resize((size, size), Image.NEAREST)
    return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0, np.asarray(lab, dtype=np.int64)


class VOCSegmentation:
    """A VOC-layout dataset of ImageSamples.

    root         folder with JPEGImages/, SegmentationClass/, ImageSets/ (and Annotations/ for label_source="xml")
    split        list name: ImageSets/<image_set>/<split>.txt
    image_set    "Segmentation" (ids with masks) or "Main" (classification ids; masks may be missing)
    label_source "mask": image-level labels from the mask; "xml": from Annotations/<id>.xml
    size         resize every image and mask to (size, size) so they batch; None keeps the original size
    min_pixels   with label_source="mask", a class counts as present from this many pixels
    Samples without a mask file (only allowed with label_source="xml") get label -1 everywhere.
    """

    def __init__(
        self,
        root: Union[str, Path],
        split: str = "train",
        image_set: str = "Segmentation",
        label_source: str = "mask",
        size: Optional[int] = None,
        min_pixels: int = 1,
        class_names: Sequence[str] = VOC_CLASSES,
    ):
        self.root = Path(root)
        if label_source not in ("mask", "xml"):
            raise ValueError(f"label_source must be 'mask' or 'xml', got {label_source!r}")
        list_file = self.root / "ImageSets" / image_set / f"{split}.txt"
        if not list_file.is_file():
            raise FileNotFoundError(f"VOC split list not found: {list_file}")
        self.ids: List[str] = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise ValueError(f"{list_file}: no image ids")
        self.split, self.label_source, self.size, self.min_pixels = split, label_source, size, min_pixels
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> ImageSample:
        image_id = self.ids[i]
        image = read_image(self.root / "JPEGImages" / f"{image_id}.jpg")
        mask_path = self.root / "SegmentationClass" / f"{image_id}.png"
        if mask_path.is_file():
            label = read_voc_mask(mask_path, self.num_classes)
            if label.shape != image.shape[1:]:
                raise ValueError(f"{mask_path}: mask size {label.shape} differs from its image {image.shape[1:]}")
        elif self.label_source == "xml":
            label = np.full(image.shape[1:], IGNORE_INDEX, dtype=np.int64)
        else:
            raise FileNotFoundError(f"mask not found: {mask_path} (label_source='mask' needs one per image)")
        if self.label_source == "xml":
            image_labels = read_voc_xml_labels(self.root / "Annotations" / f"{image_id}.xml", self.class_names)
        else:
            image_labels = labels_from_mask(label, self.num_classes, self.min_pixels)
        if self.size is not None:
            image, label = _resize(image, label, self.size)
        return ImageSample(image=image, label=label, image_labels=image_labels, image_id=image_id)
