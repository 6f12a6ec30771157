import math

import pytest
import torch

from pcseg.active.uncertainty import (
    entropy_uncertainty,
    hierarchical_uncertainty,
    margin,
    margin_uncertainty,
    random_uncertainty,
    uncertainty,
)


def test_margin_of_known_probabilities():
    prob = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 1.0]],
                        dtype=torch.float64)
    assert torch.allclose(margin(prob), torch.tensor([0.5, 0.05, 0.0, 1.0], dtype=torch.float64))
    assert torch.allclose(margin_uncertainty(prob), torch.tensor([0.5, 0.95, 1.0, 0.0], dtype=torch.float64))


def test_entropy_of_known_probabilities():
    prob = torch.tensor([[0.25] * 4, [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor([math.log(4), 0.0, math.log(2)], dtype=torch.float64)
    assert torch.allclose(entropy_uncertainty(prob), expected)


def test_hierarchy_on_a_hand_built_grid():
    """Levels 1 m and 2 m, w = 0.1. Cells: p0, p1 share a 1 m cell; p0..p2 share a 2 m cell; p3 is alone.
    point U: 0.8, 0.4, 0, 0.75; 1 m cells: {p0,p1} mean (0.4, 0.6, 0) -> 0.8, {p2} -> 0, {p3} -> 0.75;
    2 m cells: {p0,p1,p2} mean (0.6, 0.4, 0) -> 0.8, {p3} -> 0.75.
    score = U_point + 0.1 * (U_1m + 0.1 * U_2m)."""
    coord = torch.tensor([[0.5, 0.5, 0.5], [0.7, 0.5, 0.5], [1.5, 0.5, 0.5], [2.5, 0.5, 0.5]])
    prob = torch.tensor([[0.6, 0.4, 0.0], [0.2, 0.8, 0.0], [1.0, 0.0, 0.0], [0.5, 0.25, 0.25]],
                        dtype=torch.float64)
    score = hierarchical_uncertainty(prob, coord, levels=(1.0, 2.0), parent_weight=0.1)
    expected = torch.tensor([0.8 + 0.1 * (0.8 + 0.1 * 0.8), 0.4 + 0.1 * (0.8 + 0.1 * 0.8),
                             0.0 + 0.1 * (0.0 + 0.1 * 0.8), 0.75 + 0.1 * (0.75 + 0.1 * 0.75)], dtype=torch.float64)
    assert torch.allclose(score, expected)
    assert torch.allclose(expected, torch.tensor([0.888, 0.488, 0.008, 0.8325], dtype=torch.float64))
    # without parents the score is the point's own margin uncertainty
    assert torch.allclose(hierarchical_uncertainty(prob, coord, (1.0, 2.0), 0.0), margin_uncertainty(prob))


def test_hierarchy_rejects_bad_levels():
    prob, coord = torch.full((2, 2), 0.5), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="strictly increasing"):
        hierarchical_uncertainty(prob, coord, levels=(0.5, 0.1))
    with pytest.raises(ValueError, match="coord must be"):
        hierarchical_uncertainty(prob, torch.zeros(3, 3))


def test_random_scores_depend_on_seed_and_scene_only():
    a = random_uncertainty(100, 0, "scene_a")
    assert torch.equal(a, random_uncertainty(100, 0, "scene_a"))
    assert not torch.equal(a, random_uncertainty(100, 0, "scene_b"))
    assert not torch.equal(a, random_uncertainty(100, 1, "scene_a"))
    assert bool(((a >= 0) & (a < 1)).all())


def test_dispatch():
    prob = torch.tensor([[0.7, 0.3], [0.5, 0.5]])
    coord = torch.zeros(2, 3)
    assert torch.allclose(uncertainty("margin", prob, coord, "s"), torch.tensor([0.6, 1.0]))
    assert uncertainty("random", None, coord, "s").shape == (2,)
    with pytest.raises(ValueError, match="unknown strategy"):
        uncertainty("coreset", prob, coord, "s")
    with pytest.raises(ValueError, match="needs class probabilities"):
        uncertainty("entropy", None, coord, "s")
