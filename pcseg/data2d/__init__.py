"""2D data of the image branch: samples and batches, PASCAL VOC-format reader, synthetic shapes, few-shot episodes."""
from pcseg.data2d.episodes import (
    Episode, EpisodeBatch, EpisodeDataset, EpisodeSampler, class_index_from_labels, episode_batch, episode_labels,
    single_item, support_labels,
)
from pcseg.data2d.image import ImageBatch, ImageSample, TrainImages, collate_images, labels_from_mask
from pcseg.data2d.synthetic import SHAPE_CLASSES, SyntheticShapes2D
from pcseg.data2d.voc import VOC_CLASSES, VOCSegmentation, read_image, read_voc_mask, read_voc_xml_labels, voc_palette

__all__ = [
    "Episode", "EpisodeBatch", "EpisodeDataset", "EpisodeSampler", "class_index_from_labels", "episode_batch",
    "episode_labels", "single_item", "support_labels",
    "ImageBatch", "ImageSample", "TrainImages", "collate_images", "labels_from_mask",
    "SHAPE_CLASSES", "SyntheticShapes2D",
    "VOC_CLASSES", "VOCSegmentation", "read_image", "read_voc_mask", "read_voc_xml_labels", "voc_palette",
]
