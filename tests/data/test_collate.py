import numpy as np
import pytest
import torch

from pcseg.data import PointDataset, Scene, collate, make_loader, point_features, voxelize_scene
from pcseg.data.synthetic_indoor import SyntheticIndoor


def _scene(points, scene_id="s", label=None):
    coord = np.asarray(points, dtype=np.float32)
    n = len(coord)
    color = np.linspace(0, 1, n * 3, dtype=np.float32).reshape(n, 3)
    label = np.arange(n) % 3 if label is None else np.asarray(label)
    return Scene(coord=coord, color=color, label=label.astype(np.int64), scene_id=scene_id)


def test_voxelize_scene_means_features_per_voxel():
    scene = _scene([[0.01, 0.01, 0.01], [0.04, 0.02, 0.03], [0.26, 0.0, 0.0]])
    sample = voxelize_scene(scene, 0.1)
    assert sample.grid_coord.tolist() == [[0, 0, 0], [2, 0, 0]]
    assert sample.inverse.tolist() == [0, 0, 1]
    assert torch.allclose(sample.feat[0], torch.from_numpy(scene.color[:2].mean(0)))
    assert torch.allclose(sample.feat[1], torch.from_numpy(scene.color[2]))
    assert sample.point_index.tolist() == [0, 1, 2]


def test_collate_offsets_batch_column_and_shifted_inverse():
    a = voxelize_scene(_scene([[0, 0, 0], [0.05, 0, 0], [1, 1, 1]], "a"), 0.1)
    b = voxelize_scene(_scene([[0, 0, 0], [2, 0, 0]], "b"), 0.1)
    batch = collate([a, b])
    assert batch.offset.tolist() == [3, 5]
    assert batch.voxel_offset.tolist() == [2, 4]
    assert batch.grid_coord[:, 0].tolist() == [0, 0, 1, 1]
    assert batch.grid_coord[2:, 1:].tolist() == [[0, 0, 0], [20, 0, 0]]
    assert batch.inverse.tolist() == [0, 0, 1, 2, 3]
    assert batch.point_batch.tolist() == [0, 0, 0, 1, 1]
    assert batch.scene_ids == ["a", "b"] and batch.batch_size == 2
    # every point's voxel lies in its own scene
    assert (batch.grid_coord[batch.inverse, 0].long() == batch.point_batch).all()


def test_collate_extras_are_per_scene_lists():
    a = voxelize_scene(_scene([[0, 0, 0]], "a"), 0.1, extras={"k": 1})
    b = voxelize_scene(_scene([[0, 0, 0]], "b"), 0.1)
    assert collate([a, b]).extras == {"k": [1, None]}
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_point_features_and_errors():
    scene = _scene([[0, 0, 0], [1, 2, 3]])
    assert point_features(scene, ("color", "coord")).shape == (2, 6)
    with pytest.raises(ValueError, match="has no 'normal'"):
        point_features(scene, ("normal",))
    with pytest.raises(ValueError, match="unknown feature 'rgb'"):
        point_features(scene, ("rgb",))


def test_dataset_budget_keeps_full_labels_and_crop_keeps_mapping():
    source = SyntheticIndoor(split="val", num_scenes=2, points_per_scene=3000)
    from pcseg.data.transforms import Compose, CropToBudget, RandomRotateZ

    ds = PointDataset(source, voxel_size=0.05, transforms=Compose([RandomRotateZ(), CropToBudget(1000)]),
                      budget="points:7", budget_seed=3)
    sample = ds[0]
    raw = source[0]
    assert len(sample.coord) == 1000
    assert torch.equal(sample.full_label, torch.from_numpy(raw.label[sample.point_index.numpy()]))
    labeled = sample.label >= 0
    assert labeled.sum() <= 7
    assert torch.equal(sample.label[labeled], sample.full_label[labeled])
    assert ds.budget["indoor_val_0000"].numel() == 7
    # same item and epoch -> same augmentation; another epoch -> another
    assert torch.equal(ds[(0, 0)].coord, ds[(0, 0)].coord)
    assert not torch.equal(ds[(0, 0)].coord, ds[(0, 1)].coord)


def test_loader_with_workers_is_deterministic():
    source = SyntheticIndoor(split="val", num_scenes=3, points_per_scene=2000)
    from pcseg.data.transforms import default_transforms

    def run(workers):
        ds = PointDataset(source, 0.05, transforms=default_transforms("indoor"))
        loader = make_loader(ds, batch_size=2, shuffle=True, workers=workers, seed=5)
        return [(b.scene_ids, b.coord.sum().item()) for _ in range(2) for b in loader]

    single = run(0)
    assert single == run(2)
    assert single[0][0] != single[2][0] or single[0][1] != single[2][1]  # epochs differ
