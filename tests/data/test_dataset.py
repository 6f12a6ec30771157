import pytest
import torch

from pcseg.data import DATASETS, DEFAULTS, SeededSampler, build_dataset
from pcseg.data.transforms import Compose


def test_registry_names_and_defaults():
    for name in ("synthetic_indoor", "synthetic_outdoor", "scannet", "s3dis", "semantickitti", "preprocessed"):
        assert name in DATASETS
    assert set(DEFAULTS) == set(DATASETS) - {"preprocessed"}
    with pytest.raises(ValueError, match="unknown dataset 'scannet200'"):
        build_dataset("scannet200")
    with pytest.raises(ValueError, match="transforms must be"):
        build_dataset("synthetic_indoor", transforms="heavy", num_scenes=1, points_per_scene=100)
    with pytest.raises(ValueError, match="unknown feature 'rgb'"):
        build_dataset("synthetic_indoor", features=("rgb",), num_scenes=1, points_per_scene=100)


def test_build_dataset_synthetic():
    train = build_dataset("synthetic_indoor", None, "train", num_scenes=2, points_per_scene=2000, max_points=1500)
    assert isinstance(train.transforms, Compose) and train.voxel_size == DEFAULTS["synthetic_indoor"].voxel_size == 0.08
    assert train.class_names[0] == "floor" and train.num_classes == 11 and train.in_channels == 3
    sample = train[0]
    assert len(sample.coord) == 1500 and sample.feat.shape[1] == 3
    val = build_dataset("synthetic_indoor", None, "val", num_scenes=1, points_per_scene=2000)
    assert val.transforms is None and len(val[0].coord) == 2000
    outdoor = build_dataset("synthetic_outdoor", None, "val", num_scenes=1, beams=8, azimuth_steps=128,
                            features=("strength", "normal"), keep_raw_coord=True)
    sample = outdoor[0]
    assert sample.feat.shape[1] == 4 and "cameras" in sample.extras
    assert torch.equal(sample.extras["raw_coord"], sample.coord)  # no transforms on val


def test_seeded_sampler_shards_and_epochs():
    sampler = SeededSampler(10, shuffle=True, seed=3, rank=0, world_size=3)
    first = list(sampler)
    assert len(first) == len(sampler) == 4 and all(epoch == 0 for _, epoch in first)
    second = list(sampler)
    assert all(epoch == 1 for _, epoch in second) and [i for i, _ in first] != [i for i, _ in second]
    sampler.set_epoch(0)
    assert list(sampler) == first
    ranks = [[i for i, _ in SeededSampler(10, True, 3, r, 3)] for r in range(3)]
    assert set(sum(ranks, [])) == set(range(10))
    assert all(len(r) == 4 for r in ranks)
    with pytest.raises(ValueError, match="rank 3 outside world size 3"):
        SeededSampler(10, rank=3, world_size=3)
