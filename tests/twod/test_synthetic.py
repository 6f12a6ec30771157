"""Synthetic 2D shapes (determinism, labels) and the N-way K-shot episode sampler."""
import numpy as np
import pytest
import torch

from pcseg.data2d import (
    EpisodeSampler, SyntheticShapes2D, class_index_from_labels, episode_batch, episode_labels, labels_from_mask,
    support_labels,
)


def test_synthetic_deterministic_by_seed_and_order():
    a, b = SyntheticShapes2D(6, seed=3), SyntheticShapes2D(6, seed=3)
    for i in (5, 0, 3):  # any access order gives the same image
        assert np.array_equal(a[i].image, b[i].image) and np.array_equal(a[i].label, b[i].label)
    other = SyntheticShapes2D(6, seed=4)
    assert not np.array_equal(a[0].image, other[0].image)
    assert a[0].image_id != other[0].image_id


def test_synthetic_content():
    ds = SyntheticShapes2D(20, size=32, classes=(2, 5), seed=0)
    for i in range(len(ds)):
        s = ds[i]
        assert s.image.shape == (3, 32, 32) and s.image.dtype == np.float32
        assert 0.0 <= s.image.min() and s.image.max() <= 1.0
        assert set(np.unique(s.label).tolist()) <= {0, 2, 5}
        assert np.array_equal(s.image_labels, labels_from_mask(s.label, 9, ds.min_pixels))
        assert s.image_labels[[0, 2, 3, 5, 6, 7]].sum() == 0
    assert sum(ds[i].image_labels.sum() for i in range(len(ds))) >= len(ds)  # objects are drawn and labelled
    with pytest.raises(ValueError, match="classes"):
        SyntheticShapes2D(4, classes=(9,))
    with pytest.raises(IndexError):
        ds[20]


def test_labels_from_mask_literal():
    mask = np.array([[0, 3, 3], [-1, 1, 3]])
    assert labels_from_mask(mask, 4).tolist() == [1.0, 0.0, 1.0]
    assert labels_from_mask(mask, 4, min_pixels=2).tolist() == [0.0, 0.0, 1.0]


def test_episode_label_mapping():
    label = torch.tensor([-1, 0, 3, 5, 3, 7])
    assert episode_labels(label, [5, 3]).tolist() == [-1, 0, 2, 1, 2, 0]
    assert support_labels(label, [5, 3], way=1).tolist() == [-1, 0, 2, 0, 2, 0]


def test_episode_sampler():
    index = class_index_from_labels([np.array([0, 1]), np.array([1, 2]), np.array([2]), np.array([1, 1]),
                                     np.array([2, -1]), np.array([1, 2])])
    assert index == {0: [0], 1: [0, 1, 3, 5], 2: [1, 2, 4, 5]}
    sampler = EpisodeSampler(index, [1, 2], n_way=2, k_shot=1, n_query=1, seed=0)
    for ep in sampler.episodes(10):
        assert sorted(ep.classes) == [1, 2]
        items = [i for s in ep.support for i in s] + ep.query
        assert len(set(items)) == 4  # support and query disjoint
        for way, c in enumerate(ep.classes):
            assert all(i in index[c] for i in ep.support[way])
    assert sampler.episodes(3) == [sampler.episode(i) for i in range(3)]
    # nested shots: same query, the 1-shot support is the start of the 3-shot support
    one = EpisodeSampler(index, [1], 1, 1, 1, seed=5).episodes(5)
    three = EpisodeSampler(index, [1], 1, 3, 1, seed=5).episodes(5)
    for a, b in zip(one, three):
        assert a.query == b.query and b.support[0][:1] == a.support[0]
    with pytest.raises(ValueError, match="class 0 occurs in 1 items"):
        EpisodeSampler(index, [0], 1, 1, 1)


def test_episode_batch():
    ds = SyntheticShapes2D(40, size=32, classes=(1, 2), seed=0)
    index = class_index_from_labels([ds[i].label for i in range(len(ds))], 12)
    ep = EpisodeSampler(index, [1, 2], n_way=2, k_shot=2, n_query=1, seed=0).episode(0)
    batch = episode_batch(ds, ep)
    assert batch.support_image.shape == (4, 3, 32, 32) and batch.query_image.shape == (2, 3, 32, 32)
    # support images of way w carry only labels {0, w + 1}
    for s in range(4):
        assert set(batch.support_label[s].unique().tolist()) <= {0, s // 2 + 1}
        assert (batch.support_label[s] == s // 2 + 1).any()
    assert set(batch.query_label.unique().tolist()) <= {0, 1, 2}


def test_train_images_flip_by_seed():
    from pcseg.data2d import TrainImages

    ds = SyntheticShapes2D(3, size=16, seed=0)
    view = TrainImages(ds)
    flips = [np.array_equal(view[(1, seed)].label, ds[1].label[:, ::-1]) for seed in range(20)]
    assert 0 < sum(flips) < 20  # some keys flip, some do not
    assert all(np.array_equal(view[(1, s)].image, view[(1, s)].image) for s in range(3))  # pure function of the key
    assert np.array_equal(view[1].image, ds[1].image)  # a plain index is never augmented


def test_episode_dataset_colour_permutation():
    from pcseg.data2d import EpisodeDataset, single_item

    ds = SyntheticShapes2D(30, size=16, classes=(1, 2), seed=0)
    index = class_index_from_labels([ds[i].label for i in range(len(ds))], 8)
    episodes = EpisodeDataset(ds, EpisodeSampler(index, [1, 2], 1, 1, 1), num_episodes=5)
    plain = episodes[2]
    for seed in range(6):
        permuted = episodes[(2, seed)]
        assert torch.equal(permuted.support_label, plain.support_label)
        perm = [int(np.flatnonzero([torch.equal(permuted.query_image[:, c], plain.query_image[:, j])
                                    for j in range(3)])[0]) for c in range(3)]
        assert sorted(perm) == [0, 1, 2]
        assert torch.equal(permuted.support_image, plain.support_image[:, perm])
    assert single_item([plain]) is plain
    with pytest.raises(ValueError, match="batch size 1"):
        single_item([plain, plain])
