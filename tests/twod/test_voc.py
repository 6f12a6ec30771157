"""VOC-format reader: a VOC-layout folder written here (indexed P-mode PNG with the palette, 255 = ignore) and the
real sample in ../shared/data/voc_like (an RGB-palette PNG target)."""
import shutil

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from pcseg.data2d import VOC_CLASSES, VOCSegmentation, collate_images, read_voc_mask, voc_palette  # noqa: E402

MASK_A = np.array([
    [0, 0, 0, 0, 0, 0],
    [0, 255, 255, 255, 0, 0],
    [0, 255, 15, 15, 255, 0],
    [0, 255, 15, 15, 255, 12],
], dtype=np.uint8)  # person (15) with an ignore border, one pixel of dog (12)
MASK_B = np.array([[0, 0, 1, 1, 1, 1]] * 4, dtype=np.uint8)  # aeroplane


def write_p_png(path, mask):
    im = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())
    im.putpalette(voc_palette().ravel().tolist())
    im.save(path)


def make_voc(root):
    for sub in ("JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, mask in (("a", MASK_A), ("b", MASK_B)):
        Image.fromarray(rng.integers(0, 255, (4, 6, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        write_p_png(root / "SegmentationClass" / f"{name}.png", mask)
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename>"
        "<object><name>person</name><difficult>0</difficult></object>"
        "<object><name>dog</name></object><object><name>person</name></object></annotation>")
    (root / "Annotations" / "b.xml").write_text("<annotation><object><name>aeroplane</name></object></annotation>")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\n")


def test_palette_entries():
    palette = voc_palette()
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[15].tolist() == [192, 128, 128]
    assert palette[255].tolist() == [224, 224, 192]


def test_voc_layout_p_mode(tmp_path):
    make_voc(tmp_path)
    with Image.open(tmp_path / "SegmentationClass" / "a.png") as im:
        assert im.mode == "P"
    ds = VOCSegmentation(tmp_path, "train")
    assert len(ds) == 2 and ds.num_classes == 21
    a = ds[0]
    assert a.image.shape == (3, 4, 6) and a.image.dtype == np.float32
    expected = MASK_A.astype(np.int64)
    expected[expected == 255] = -1
    assert np.array_equal(a.label, expected)
    assert np.flatnonzero(a.image_labels).tolist() == [11, 14]  # dog, person (class k -> entry k - 1)
    assert np.flatnonzero(ds[1].image_labels).tolist() == [0]
    # min_pixels drops the single dog pixel
    assert np.flatnonzero(VOCSegmentation(tmp_path, "train", min_pixels=2)[0].image_labels).tolist() == [14]
    xml = VOCSegmentation(tmp_path, "train", label_source="xml")
    assert np.flatnonzero(xml[0].image_labels).tolist() == [11, 14]
    batch = collate_images([ds[0], ds[1]])
    assert batch.image.shape == (2, 3, 4, 6) and batch.label.shape == (2, 4, 6)
    assert batch.image_labels.shape == (2, 20)


def test_voc_resize_and_xml_without_mask(tmp_path):
    make_voc(tmp_path)
    resized = VOCSegmentation(tmp_path, "train", size=8)[1]
    assert resized.image.shape == (3, 8, 8)
    assert set(np.unique(resized.label).tolist()) == {0, 1}  # nearest: no new values
    (tmp_path / "SegmentationClass" / "b.png").unlink()
    sample = VOCSegmentation(tmp_path, "train", label_source="xml")[1]
    assert (sample.label == -1).all() and np.flatnonzero(sample.image_labels).tolist() == [0]
    with pytest.raises(FileNotFoundError, match="b.png"):
        VOCSegmentation(tmp_path, "train")[1]


def test_voc_errors(tmp_path):
    make_voc(tmp_path)
    with pytest.raises(FileNotFoundError, match="val.txt"):
        VOCSegmentation(tmp_path, "val")
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(ValueError, match="unicorn"):
        VOCSegmentation(tmp_path, "train", label_source="xml")[0]
    bad = np.zeros((2, 2, 3), dtype=np.uint8)
    bad[0, 0] = [1, 2, 3]
    Image.fromarray(bad).save(tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"bad.png.*\(1, 2, 3\)"):
        read_voc_mask(tmp_path / "bad.png")
    write_p_png(tmp_path / "high.png", np.full((2, 2), 30, dtype=np.uint8))
    with pytest.raises(ValueError, match="class value 30"):
        read_voc_mask(tmp_path / "high.png")


def test_rgb_mask_matches_p_mode(tmp_path):
    write_p_png(tmp_path / "p.png", MASK_A)
    Image.fromarray(voc_palette()[MASK_A]).save(tmp_path / "rgb.png")
    assert np.array_equal(read_voc_mask(tmp_path / "p.png"), read_voc_mask(tmp_path / "rgb.png"))


def test_real_voc_like_sample(shared_data, tmp_path):
    target = shared_data / "voc_like" / "1_target.png"
    with Image.open(target) as im:
        assert im.mode == "RGB"  # not P-mode: the reader must go through the palette
    mask = read_voc_mask(target)
    values, counts = np.unique(mask, return_counts=True)
    assert values.tolist() == [-1, 0, 1]  # ignore border, background, aeroplane
    assert counts.tolist() == [12612, 223955, 26602]
    # the same files in a VOC layout
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (tmp_path / sub).mkdir(parents=True)
    with Image.open(shared_data / "voc_like" / "1_image.png") as im:
        im.convert("RGB").save(tmp_path / "JPEGImages" / "1.jpg", quality=95)
    shutil.copy(target, tmp_path / "SegmentationClass" / "1.png")
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("1\n")
    sample = VOCSegmentation(tmp_path, "val")[0]
    assert sample.image.shape == (3, 513, 513)
    assert [VOC_CLASSES[k + 1] for k in np.flatnonzero(sample.image_labels)] == ["aeroplane"]
    assert np.array_equal(sample.label, mask)
    small = VOCSegmentation(tmp_path, "val", size=64)[0]
    assert small.image.shape == (3, 64, 64) and set(np.unique(small.label).tolist()) == {-1, 0, 1}
