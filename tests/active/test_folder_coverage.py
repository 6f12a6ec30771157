"""The model-free coverage strategy: farthest-point order as a score, and selection with it (no checkpoint)."""
import numpy as np
import pytest
import torch
from active_helpers import TinySource

from pcseg.active import ActiveConfig, coverage_scores, select_points
from pcseg.active.uncertainty import uncertainty

INF = float("inf")


def line(n=11):
    """Points at x = 0, 1, ..., n - 1 metres."""
    return torch.tensor([[float(x), 0.0, 0.0] for x in range(n)])


def test_farthest_point_walk_on_a_line():
    score = coverage_scores(line(), np.ones(11, bool), count=5, cell=0.5)
    # centre first (inf), then both ends (5 m away), then x=2 and x=7 (2 m from every earlier pick, lowest index
    # first); the rest score their distance to the nearest pick, 1 m
    assert score.tolist() == [5, 1, 2, 1, 1, INF, 1, 2, 1, 1, 5]


def test_walk_starts_from_labeled_points_and_skips_non_candidates():
    candidates = np.ones(11, bool)
    candidates[10] = False  # e.g. already labeled or without ground truth in oracle mode
    score = coverage_scores(line(), candidates, count=2, cell=0.5, labeled=torch.tensor([0]))
    assert score[10] == -1
    assert score[9] == 9 and score[4] == 4  # farthest from x=0, then farthest from {0, 9}: x=4 or x=5 -> 4 first
    assert score[:9].max() <= 4 + 1e-6 and score[0] == 0  # x=0 itself is at distance 0


def test_one_candidate_per_cell_takes_part():
    coord = torch.tensor([[0.01, 0.0, 0.0], [0.02, 0.0, 0.0], [3.0, 0.0, 0.0]])
    score = coverage_scores(coord, np.ones(3, bool), count=3, cell=0.5)
    assert score[1] == -1 and score[0] == INF and score[2] == pytest.approx(2.99)


def test_uncertainty_refuses_coverage_without_candidates():
    with pytest.raises(ValueError, match="call coverage_scores"):
        uncertainty("coverage", None, line(), "s")


def min_distance(source, picks):
    """Smallest distance between two picked points of one scene."""
    best = INF
    for i, sid in enumerate(source.scene_ids):
        if sid in picks:
            xyz = torch.from_numpy(source[i].coord[picks[sid].numpy()]).double()
            d = torch.cdist(xyz, xyz) + torch.eye(len(xyz)) * 1e9
            best = min(best, float(d.min()))
    return best


def test_selection_without_a_model_spreads_the_picks():
    source = TinySource(num_scenes=3, points=600)
    coverage = select_points(source, ActiveConfig(strategy="coverage"), {}, num_points=24, labelable_only=False,
                             voxel_size=0.05, progress=False)
    assert coverage.budget == 24 and sum(len(v) for v in coverage.picks.values()) == 24
    assert set(coverage.picks) == set(source.scene_ids)  # every scene gets its first pick before any second
    assert coverage.suppressed == 0
    again = select_points(source, ActiveConfig(strategy="coverage"), {}, num_points=24, labelable_only=False,
                          voxel_size=0.05, progress=False)
    assert all(torch.equal(coverage.picks[k], again.picks[k]) for k in coverage.picks)
    random = select_points(source, ActiveConfig(strategy="random"), {}, num_points=24, labelable_only=False,
                           progress=False)
    assert min_distance(source, coverage.picks) > 2 * min_distance(source, random.picks)
    # a second round starts from the first round's picks and never repeats them
    more = select_points(source, ActiveConfig(strategy="coverage"), coverage.picks, num_points=12,
                         labelable_only=False, voxel_size=0.05, progress=False)
    for sid, picks in more.picks.items():
        assert not np.intersect1d(picks.numpy(), coverage.picks.get(sid, torch.zeros(0)).numpy()).size
