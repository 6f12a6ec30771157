import numpy as np
import pytest
import torch

import pcseg.active.select as select_module
from pcseg.active.config import ActiveConfig
from pcseg.active.select import round_budget, select_points, write_round
from pcseg.weak.budget import read_budget, union_budgets
from active_helpers import CoordModel, TinySource


def run(source, cfg=None, previous=None, **kwargs):
    kwargs.setdefault("num_points", 25)
    return select_points(source, cfg or ActiveConfig(), previous or {}, method=CoordModel(), progress=False,
                         **kwargs)


def total(picks):
    return sum(len(v) for v in picks.values())


@pytest.mark.parametrize("strategy", ["hierarchical", "margin", "entropy", "random"])
def test_budget_is_met_exactly_and_deterministically(strategy):
    source = TinySource()
    cfg = ActiveConfig(strategy=strategy)
    first, second = run(source, cfg), run(source, cfg)
    assert total(first.picks) == 25 and first.budget == 25
    assert first.picks.keys() == second.picks.keys()
    assert all(torch.equal(first.picks[k], second.picks[k]) for k in first.picks)
    for sid, index in first.picks.items():
        assert len(torch.unique(index)) == len(index)
        label = source[source.scene_ids.index(sid)].label
        assert bool((label[index.numpy()] >= 0).all()), "oracle mode picked a point without ground truth"


def test_ratio_budget_counts_all_points():
    source = TinySource(num_scenes=3, points=500)
    selection = run(source, num_points=None, ratio=0.01)
    assert total(selection.picks) == 15 == round_budget(1500, ratio=0.01)


def test_never_repicks_a_labeled_point():
    source = TinySource()
    first = run(source, num_points=40)
    second = run(source, previous=first.picks, num_points=40)
    assert total(second.picks) == 40
    for sid, index in second.picks.items():
        if sid in first.picks:
            assert np.intersect1d(index.numpy(), first.picks[sid].numpy()).size == 0


def test_margin_picks_the_most_uncertain_points_without_suppression():
    source = TinySource(num_scenes=2)
    cfg = ActiveConfig(strategy="margin", suppression=False)
    picks = run(source, cfg, num_points=10).picks
    model = CoordModel()
    scored = []
    for i, sid in enumerate(source.scene_ids):
        scene = source[i]
        prob = torch.softmax(torch.sin(3 * torch.from_numpy(scene.coord)) @ model.weight.detach(), 1)
        top = prob.topk(2, 1).values
        unc = (1 - (top[:, 0] - top[:, 1])).numpy()
        unc[scene.label < 0] = -np.inf
        scored += [(u, i, j) for j, u in enumerate(unc)]
    best = sorted(scored, key=lambda t: (-t[0], t[1], t[2]))[:10]
    expected = {(source.scene_ids[i], j) for _, i, j in best}
    assert {(sid, int(j)) for sid, v in picks.items() for j in v} == expected


def test_random_share_is_the_random_selection_then_the_strategy_on_the_rest():
    source = TinySource()
    previous = run(source, ActiveConfig(strategy="random", seed=3), num_points=10).picks
    mixed = run(source, ActiveConfig(strategy="margin", random_share=0.4, seed=1), previous=previous, num_points=25)
    # expected: 10 random picks (seed 1), then the 15 most uncertain of the points still unlabeled
    random_part = run(source, ActiveConfig(strategy="random", seed=1), previous=previous, num_points=10).picks
    rest = run(source, ActiveConfig(strategy="margin", seed=1), previous=union_budgets(previous, random_part),
               num_points=15).picks
    expected = {k: sorted(random_part.get(k, torch.zeros(0)).tolist() + rest.get(k, torch.zeros(0)).tolist())
                for k in set(random_part) | set(rest)}
    assert mixed.budget == 25 and mixed.random == 10 and total(mixed.picks) == 25
    assert {k: v.tolist() for k, v in mixed.picks.items()} == expected
    assert "10 of them at random" in mixed.summary()
    all_random = run(source, ActiveConfig(strategy="margin", random_share=1.0, seed=1), previous=previous,
                     num_points=10).picks
    assert {k: v.tolist() for k, v in all_random.items()} == {k: v.tolist() for k, v in random_part.items()}
    with pytest.raises(Exception, match="random_share"):
        run(source, ActiveConfig(random_share=1.5))


class CountingSource(TinySource):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0

    def __getitem__(self, i):
        self.reads += 1
        return super().__getitem__(i)


@pytest.mark.parametrize("budget, expected", [({"num_points": 25}, 25), ({"ratio": 0.01}, 15)])
def test_mixed_selection_counts_the_points_once(budget, expected):
    """One pass to count the points, then one scoring pass per part (random, strategy)."""
    source = CountingSource()
    mixed = run(source, ActiveConfig(strategy="margin", random_share=0.4), **{"num_points": None, **budget})
    assert source.reads == 3 * len(source) and mixed.budget == total(mixed.picks) == expected
    # the counts of a mixed selection are its strategy part's: the candidates left after the random picks
    assert mixed.candidates == sum(int((source[i].label >= 0).sum()) for i in range(len(source))) - mixed.random


def test_suppression_that_drops_too_much_is_filled_back_to_the_budget():
    cfg = ActiveConfig(strategy="margin", radius=100.0, similarity=-1.0)  # one survivor per scene
    selection = run(TinySource(), cfg, num_points=12)
    assert total(selection.picks) == 12
    assert selection.filled == 12 - 3 and selection.suppressed > 0


def test_annotator_mode_may_pick_points_without_ground_truth():
    source = TinySource(num_scenes=1, points=70)
    selection = run(source, ActiveConfig(strategy="random"), num_points=70, labelable_only=False)
    assert total(selection.picks) == 70
    with pytest.raises(ValueError, match="only 60 points of the training set have a ground-truth label"):
        run(source, ActiveConfig(strategy="random"), num_points=61)
    with pytest.raises(ValueError, match="has only 70 unlabeled points"):
        run(source, ActiveConfig(strategy="random"), num_points=71, labelable_only=False)


def test_bad_requests():
    with pytest.raises(ValueError, match="exactly one"):
        round_budget(100)
    with pytest.raises(ValueError, match="does not have"):
        run(TinySource(), previous={"nowhere": torch.tensor([1])})
    with pytest.raises(ValueError, match="needs a model"):
        select_points(TinySource(), ActiveConfig(), {}, num_points=3, progress=False)


def test_interrupted_selection_resumes_from_the_cache(tmp_path, monkeypatch):
    source = TinySource(num_scenes=4)
    reference = run(source, num_points=30)
    real, calls = select_module.score_scene, []

    def failing(scene, *args, **kwargs):
        calls.append(scene.scene_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(scene, *args, **kwargs)

    monkeypatch.setattr(select_module, "score_scene", failing)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        run(source, num_points=30, cache_dir=cache, model_key="m")
    assert len(list(cache.glob("scene_*.pt"))) == 2
    calls.clear()
    resumed = run(source, num_points=30, cache_dir=cache, model_key="m")
    assert calls == source.scene_ids[2:], "cached scenes were scored again"
    assert all(torch.equal(resumed.picks[k], reference.picks[k]) for k in reference.picks)
    assert not cache.exists()


def test_cache_of_another_model_is_not_reused(tmp_path, monkeypatch):
    source = TinySource(num_scenes=4)
    real, calls = select_module.score_scene, []

    def failing(scene, *args, **kwargs):
        calls.append(scene.scene_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(scene, *args, **kwargs)

    monkeypatch.setattr(select_module, "score_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        run(source, num_points=30, cache_dir=tmp_path, model_key="epoch 1")
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run(source, num_points=30, cache_dir=tmp_path, model_key="epoch 2")
    assert calls == source.scene_ids[:3]


def test_write_round_makes_a_new_file(tmp_path):
    previous = {"a": torch.tensor([1, 5]), "b": torch.tensor([2])}
    path = write_round(previous, {"a": torch.tensor([3]), "c": torch.tensor([0, 9])}, tmp_path / "r1.pt")
    budget = read_budget(path)
    assert budget["a"].tolist() == [1, 3, 5] and budget["b"].tolist() == [2] and budget["c"].tolist() == [0, 9]
    with pytest.raises(FileExistsError):
        write_round(previous, {"a": torch.tensor([4])}, path)
    with pytest.raises(ValueError, match="repeat 1 already labeled"):
        write_round(previous, {"a": torch.tensor([5])}, tmp_path / "r2.pt")
