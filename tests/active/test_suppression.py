import pytest
import torch

from pcseg.active.suppression import suppress

# Candidates already sorted from most to least uncertain (radius 0.2 m, cosine similarity > 0.8 suppresses):
#   0 A (0, 0, 0)        [1, 0]      kept (first)
#   1 B (0.1, 0, 0)      [1, 0]      dropped: 0.1 m from A, identical features
#   2 C (0.1, 0.1, 0)    [0, 1]      kept: near A but orthogonal features
#   3 D (1, 0, 0)        [1, 0]      kept: far from everything chosen
#   4 E (0.25, 0, 0)     [2, 0]      kept: 0.15 m from B, but B was dropped and suppresses nothing; A is 0.25 m away
#   5 F (1.05, 0, 0)     [0.9, 0.1]  dropped: 0.05 m from D, cosine 0.994
#   6 G (0, 0.15, 0)     [1, 0]      kept: next to A, but in another scene
COORD = torch.tensor([[0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [1, 0, 0], [0.25, 0, 0], [1.05, 0, 0], [0, 0.15, 0]])
FEAT = torch.tensor([[1, 0], [1, 0], [0, 1], [1, 0], [2, 0], [0.9, 0.1], [1, 0]], dtype=torch.float32)
BATCH = torch.tensor([0, 0, 0, 0, 0, 0, 1])


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_suppression_keeps_exactly_the_expected_points(chunk):
    kept = suppress(COORD, FEAT, radius=0.2, similarity=0.8, batch=BATCH, chunk=chunk)
    assert kept.tolist() == [0, 2, 3, 4, 6]


def test_limit_stops_the_walk():
    assert suppress(COORD, FEAT, 0.2, 0.8, batch=BATCH, limit=3).tolist() == [0, 2, 3]


def test_thresholds_switch_suppression_off_and_on():
    assert suppress(COORD, FEAT, radius=0.01, similarity=0.8, batch=BATCH).tolist() == list(range(7))
    assert suppress(COORD, FEAT, radius=0.2, similarity=1.0, batch=BATCH).tolist() == list(range(7))
    # everything similar (> -1) and one scene within 10 m: only the first survives
    assert suppress(COORD, FEAT, radius=10.0, similarity=-1.0).tolist() == [0]


def test_bad_input():
    with pytest.raises(ValueError, match="feat must be"):
        suppress(COORD, FEAT[:3])
    with pytest.raises(ValueError, match="radius must be > 0"):
        suppress(COORD, FEAT, radius=0.0)
    with pytest.raises(ValueError, match="batch must be"):
        suppress(COORD, FEAT, batch=BATCH.int())
