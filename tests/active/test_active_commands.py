"""End to end on tiny generated rooms: `pcseg active-loop`, `pcseg select` (oracle and annotator modes) and
`pcseg labels export|import`."""
import csv
import json

import numpy as np
import pytest
import torch

from pcseg.cli import main
from pcseg.data import SyntheticIndoor
from pcseg.weak.budget import read_budget

TINY = ["model.backend=native", "data.num_train_scenes=2", "data.num_val_scenes=1", "data.points_per_scene=1500", "data.batch_size=2",
        "model.base_channels=4", "model.channels=[4,4,4,4,4,4,4,4]", "train.steps=2", "train.log_every=1",
        "train.checkpoint_every=2", "train.threads=1", "eval.batch_size=1", "active.rounds=1",
        "active.initial=points:3", "active.round_points=4"]


def labeled(path):
    return {k: v.tolist() for k, v in read_budget(path).items()}


@pytest.fixture(scope="module")
def loop_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop")
    assert main(["active-loop", "configs/synthetic/hpal.yaml", *TINY, "--out", str(out), "--no-progress"]) == 0
    return out


def test_active_loop_table_and_budgets(loop_dir, capsys):
    rows = json.loads((loop_dir / "rounds.json").read_text())
    assert [r["round"] for r in rows] == [0, 1]
    assert [r["labeled_points"] for r in rows] == [6, 10]
    assert all(0.0 <= r["miou"] <= 1.0 for r in rows)
    first, second = labeled(loop_dir / "budgets/round_0.pt"), labeled(loop_dir / "budgets/round_1.pt")
    assert all(set(first[k]) <= set(second[k]) for k in first)
    # rerunning continues: budgets are kept, the trainings resume at their last step
    before = (loop_dir / "budgets/round_1.pt").stat().st_mtime_ns
    assert main(["active-loop", "configs/synthetic/hpal.yaml", *TINY, "--out", str(loop_dir), "--no-progress"]) == 0
    assert (loop_dir / "budgets/round_1.pt").stat().st_mtime_ns == before
    assert "labeled points" in capsys.readouterr().out


def test_active_loop_warm_start_trains_each_round_from_the_previous_model(tmp_path, monkeypatch):
    from pcseg.engine import checkpoint as ckpt
    from pcseg.engine.trainer import Trainer

    started = {}
    init_weights = Trainer.init_weights

    def spy(self, path):
        init_weights(self, path)
        started[str(path)] = {k: v.clone() for k, v in self.method.state_dict().items()}

    monkeypatch.setattr(Trainer, "init_weights", spy)
    loop = tmp_path / "loop"
    args = ["active-loop", "configs/synthetic/hpal.yaml", *TINY, "active.warm_start=true", "--no-progress"]
    assert main([*args, "--out", str(loop)]) == 0
    previous = loop / "round_0" / "last.pt"
    assert list(started) == [str(previous)]  # round 0 starts from scratch, round 1 from round 0's weights
    for k, v in ckpt.load(previous)["model"].items():  # student and teacher; the pseudo-label ramp starts over
        assert torch.equal(started[str(previous)][k], torch.zeros_like(v) if k == "steps" else v), k
    assert ckpt.load(loop / "round_1" / "last.pt")["config"]["train"]["init_from"] == str(previous)
    # a loop moved to another folder resumes there: its budgets and starting weights count by their contents
    loop.rename(tmp_path / "moved")
    assert main([*args, "--out", str(tmp_path / "moved")]) == 0
    assert list(started) == [str(previous)]  # nothing trained again


def test_hpal_training_starts_from_a_supervised_checkpoint(tmp_path, monkeypatch, capsys):
    from pcseg.engine import checkpoint as ckpt
    from pcseg.engine.trainer import Trainer

    started = {}
    init_weights = Trainer.init_weights

    def spy(self, path):
        init_weights(self, path)
        started.update({k: v.clone() for k, v in self.method.state_dict().items()})

    monkeypatch.setattr(Trainer, "init_weights", spy)
    tiny = [o for o in TINY if not o.startswith("active.")] + ["train.progress=false"]
    assert main(["train", "configs/synthetic/supervised.yaml", *tiny, "--out", str(tmp_path / "ce")]) == 0
    supervised = ckpt.load(tmp_path / "ce" / "last.pt")["model"]
    assert main(["train", "configs/synthetic/hpal.yaml", *tiny, f"train.init_from={tmp_path / 'ce' / 'last.pt'}",
                 "--out", str(tmp_path / "hpal")]) == 0
    assert set(supervised) < set(started) and int(started["steps"]) == 0
    for k, v in supervised.items():  # the student and its teacher start as the supervised network
        assert torch.equal(started[k], v) and torch.equal(started["teacher.model." + k], v), k
    # a network of another shape is refused by name; a SLidR checkpoint goes through `pcseg finetune --pretrained`
    wide = ckpt.load(tmp_path / "ce" / "last.pt")
    wide["model"]["head.weight"] = torch.zeros(7, *wide["model"]["head.weight"].shape[1:])
    ckpt.save_atomic(wide, tmp_path / "wide.pt")
    wide["config"]["method"]["name"] = "slidr"
    ckpt.save_atomic(wide, tmp_path / "slidr.pt")
    capsys.readouterr()
    for name, message in (("wide.pt", "head.weight: checkpoint (7,"), ("slidr.pt", "pcseg finetune --pretrained")):
        assert main(["train", "configs/synthetic/hpal.yaml", *tiny, f"train.init_from={tmp_path / name}",
                     "--out", str(tmp_path / name.replace(".pt", ""))]) == 2
        assert message in capsys.readouterr().err


def test_select_oracle_writes_a_new_budget(loop_dir, tmp_path, capsys):
    ckpt, prev = loop_dir / "round_1/last.pt", loop_dir / "budgets/round_1.pt"
    out = tmp_path / "round_2.pt"
    args = ["select", "--checkpoint", str(ckpt), "--points", "7", "--oracle", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    old, new = labeled(prev), labeled(out)
    assert sum(map(len, new.values())) == sum(map(len, old.values())) + 7
    assert all(set(old[k]) <= set(new[k]) for k in old)
    assert not (tmp_path / "round_2.cache").exists()
    assert main(args) == 2 and "exists" in capsys.readouterr().err


def test_select_for_annotators_then_import(loop_dir, tmp_path, capsys):
    ckpt, prev = loop_dir / "round_1/last.pt", loop_dir / "budgets/round_1.pt"
    export = tmp_path / "export"
    assert main(["select", "--checkpoint", str(ckpt), "--points", "5", "--export", str(export), "--no-progress",
                 "active.strategy=margin"]) == 0
    picks = labeled(export / "picks.pt")
    assert sum(map(len, picks.values())) == 5
    source = SyntheticIndoor(split="train", num_scenes=2, points_per_scene=1500)
    csvs = sorted(export.glob("indoor_*.csv"))
    for path in csvs:  # the "annotator" fills the label column with the ground truth
        rows = list(csv.reader(path.open()))
        for row in rows[1:]:
            row[5] = source.class_names[int(source[source.scene_ids.index(row[0])].label[int(row[1])])]
        csv.writer(path.open("w", newline="")).writerows(rows)
    new = tmp_path / "round_2.pt"
    assert main(["labels", "import", *map(str, csvs), "--budget", str(prev), "--out", str(new),
                 "--checkpoint", str(ckpt)]) == 0
    merged, old = labeled(new), labeled(prev)
    for k in merged:
        assert sorted(set(old.get(k, [])) | set(picks.get(k, []))) == merged[k]
    # export again from the picks file; a bad id is refused with file and line
    again = tmp_path / "again"
    assert main(["labels", "export", str(export / "picks.pt"), "--out", str(again), "--checkpoint", str(ckpt)]) == 0
    bad = sorted(again.glob("indoor_*.csv"))[0]
    rows = list(csv.reader(bad.open()))
    rows[1][5] = "99"
    csv.writer(bad.open("w", newline="")).writerows(rows)
    capsys.readouterr()
    assert main(["labels", "import", str(bad), "--out", str(tmp_path / "x.pt"), "--checkpoint", str(ckpt)]) == 2
    assert f"{bad}:2: unknown class id 99" in capsys.readouterr().err
    assert np.all([not (tmp_path / "x.pt").exists()])
