from pathlib import Path

import pytest

from pcseg.active.config import ActiveConfig, load_active_config
from pcseg.engine.config import ConfigError
from pcseg.methods.hpal import HPAL

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("dataset", ["s3dis", "scannet", "synthetic"])
def test_shipped_hpal_configs_load(dataset):
    cfg, active = load_active_config(CONFIGS / dataset / "hpal.yaml")
    assert isinstance(cfg.method, HPAL.Config) and cfg.method.ema_decay == 0.955 and cfg.method.threshold == 0.75
    assert active.strategy == "hierarchical" and active.levels == (0.1, 0.5, 1.0) and active.parent_weight == 0.1
    assert (active.radius, active.similarity) == (0.2, 0.8)
    # the authors' schedule: the random first labels are a fifth of the final budget
    assert active.initial == "ratio:0.0002" and active.round_ratio == 0.0002 and active.rounds == 4


def test_overrides_split_between_engine_and_active(tmp_path):
    cfg, active = load_active_config(CONFIGS / "synthetic" / "hpal.yaml",
                                     ["active.strategy=margin", "active.levels=[0.2,0.4]", "train.steps=7"])
    assert active.strategy == "margin" and active.levels == (0.2, 0.4) and cfg.train.steps == 7
    with pytest.raises(ConfigError, match="unknown key 'active.radiu'.*did you mean 'radius'"):
        load_active_config(None, ["active.radiu=0.3"])
    with pytest.raises(ConfigError, match="active.strategy"):
        load_active_config(None, ["active.strategy=coreset"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("active:\n  rounds: -1\n")
    with pytest.raises(ConfigError, match="active.rounds"):
        load_active_config(bad)


def test_check_rejects_bad_values():
    for change in ({"levels": (0.5, 0.1)}, {"radius": 0.0}, {"similarity": 2.0}, {"pool_factor": 0.5},
                   {"initial": "half"}, {"round_ratio": 0.0}):
        with pytest.raises(ConfigError):
            ActiveConfig(**change).check()
