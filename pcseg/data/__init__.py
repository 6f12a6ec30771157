"""Scenes, readers, synthetic generators, transforms, voxelization + collate, datasets and loaders."""
from pcseg.data.batch import PointBatch
from pcseg.data.collate import FEATURES, Sample, collate, point_features, voxelize_scene
from pcseg.data.dataset import (
    DATASETS,
    DEFAULTS,
    DatasetDefaults,
    PointDataset,
    SeededSampler,
    build_dataset,
    build_source,
    make_loader,
    seed_worker,
)
from pcseg.data.scene import IGNORE_INDEX, Scene
from pcseg.data.synthetic_indoor import INDOOR_CLASSES, SyntheticIndoor, generate_indoor_scene
from pcseg.data.transforms import default_transforms

__all__ = [
    "PointBatch", "FEATURES", "Sample", "collate", "point_features", "voxelize_scene", "DATASETS", "DEFAULTS",
    "DatasetDefaults", "PointDataset", "SeededSampler", "build_dataset", "build_source", "make_loader",
    "seed_worker", "IGNORE_INDEX", "Scene", "INDOOR_CLASSES", "SyntheticIndoor", "generate_indoor_scene",
    "default_transforms",
]
