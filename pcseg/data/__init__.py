"""Scenes, readers, synthetic generators, transforms, voxelization + collate, datasets and loaders."""
from pcseg.data.batch import PointBatch
from pcseg.data.camera import Camera, KittiObject, NuScenesPairs, project_points
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
from pcseg.data.ondisk import Preprocessed
from pcseg.data.preprocess import PreprocessReport, preprocess
from pcseg.data.s3dis import S3DIS, S3DIS_CLASSES, DataWarning
from pcseg.data.scannet import SCANNET_CLASSES, ScanNet
from pcseg.data.scene import IGNORE_INDEX, Scene
from pcseg.data.semantickitti import SEMANTICKITTI_CLASSES, SemanticKITTI
from pcseg.data.synthetic_indoor import INDOOR_CLASSES, SyntheticIndoor, generate_indoor_scene
from pcseg.data.synthetic_outdoor import OUTDOOR_CLASSES, SyntheticOutdoor, generate_outdoor_scene
from pcseg.data.transforms import default_transforms

__all__ = [
    "PointBatch", "FEATURES", "Sample", "collate", "point_features", "voxelize_scene", "DATASETS", "DEFAULTS",
    "DatasetDefaults", "PointDataset", "SeededSampler", "build_dataset", "build_source", "make_loader",
    "seed_worker", "IGNORE_INDEX", "Scene", "INDOOR_CLASSES", "SyntheticIndoor", "generate_indoor_scene",
    "default_transforms", "Camera", "KittiObject", "NuScenesPairs", "project_points", "Preprocessed",
    "PreprocessReport", "preprocess", "S3DIS", "S3DIS_CLASSES", "DataWarning", "SCANNET_CLASSES", "ScanNet",
    "SEMANTICKITTI_CLASSES", "SemanticKITTI", "OUTDOOR_CLASSES", "SyntheticOutdoor", "generate_outdoor_scene",
]
