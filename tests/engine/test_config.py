import copy
from pathlib import Path

import pytest

from pcseg.engine.config import (ConfigError, config_differences, format_config, load_config, parse_overrides,
                                 read_yaml, save_config)


def write(path, text):
    path.write_text(text)
    return path


def test_defaults_yaml_and_overrides_in_order(tmp_path):
    write(tmp_path / "base.yaml", "optim:\n  lr: 0.5\n  name: adamw\ndata:\n  voxel_size: 0.1\n")
    cfg_file = write(tmp_path / "run.yaml", "_base_: base.yaml\noptim:\n  lr: 0.02\n")
    cfg = load_config(cfg_file, ["optim.weight_decay=1e-3", "model.channels=[16, 32]", "train.amp=false",
                                 "optim.betas=[0.8,0.9]", "train.steps=2e3"])
    assert cfg.optim.lr == 0.02  # file over base
    assert cfg.optim.name == "adamw"  # from base
    assert cfg.data.voxel_size == 0.1
    assert cfg.optim.weight_decay == 1e-3 and isinstance(cfg.optim.weight_decay, float)
    assert cfg.model.channels == (16, 32)
    assert cfg.train.amp is False
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.train.steps == 2000 and isinstance(cfg.train.steps, int)
    assert cfg.schedule.name == "poly"  # untouched default


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["optim.lrr=0.1"])
    msg = str(err.value)
    assert "optim.lrr" in msg and "did you mean 'lr'" in msg and "weight_decay" in msg and "command line" in msg

    with pytest.raises(ConfigError, match="command line: active.* settings are read by `pcseg select`"):
        load_config(overrides=["active.rounds=2"])
    bad = write(tmp_path / "bad.yaml", "trian:\n  steps: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'trian'.*'train'.*valid keys: data, model"):
        load_config(bad)


def test_method_section_is_typed_by_method_name():
    cfg = load_config(overrides=["method.label_smoothing=0.1"])
    assert cfg.method.name == "supervised" and cfg.method.label_smoothing == 0.1
    with pytest.raises(ConfigError, match="unknown method 'nope'.*supervised"):
        load_config(overrides=["method.name=nope"])
    with pytest.raises(ConfigError, match="unknown key 'method.mask_ratio'"):
        load_config(overrides=["method.mask_ratio=0.5"])


@pytest.mark.parametrize("item, match", [
    ("train.steps=abc", "train.steps: expected an integer, got 'abc'"),
    ("train.steps=2.5", "expected an integer"),
    ("train.amp=maybe", "expected true or false"),
    ("optim.lr=fast", "expected a number"),
    ("optim.betas=[0.9]", "expected 2 values"),
    ("optim.name=adam", "'adam' is not one of sgd, adamw"),
    ("optim.lr=0", "optim.lr must be positive"),
    ("train.ema_decay=1.0", r"ema_decay must be in \[0, 1\)"),
    ("lr=0.1", "expected section.key=value"),
    ("optim.lr", "expected section.key=value"),
])
def test_bad_values_are_clear(item, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=[item])


def test_base_rules(tmp_path):
    write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    write(tmp_path / "b.yaml", "_base_: c.yaml\n")
    write(tmp_path / "c.yaml", "")
    with pytest.raises(ConfigError, match="at most one level"):
        load_config(tmp_path / "a.yaml")
    write(tmp_path / "d.yaml", "_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match="base file 'missing.yaml' not found"):
        load_config(tmp_path / "d.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    write(tmp_path / "e.yaml", "optim: [1, 2]\n")
    with pytest.raises(ConfigError, match="section 'optim' must be a mapping"):
        load_config(tmp_path / "e.yaml")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(overrides=["model.layers=[1,1]", "data.budget=ratio:0.001", "optim.name=adamw"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert load_config(base=cfg.to_dict()) == cfg
    text = format_config(cfg)
    assert "  budget: ratio:0.001  # label budget" in text and "  layers: [1, 1]" in text


def test_config_differences_name_each_changed_key():
    before = load_config(overrides=["method.name=hpal", "optim.lr=0.02"]).to_dict()
    after = load_config(overrides=["method.name=hpal", "method.threshold=0.9", "train.progress=false"]).to_dict()
    assert config_differences(before, after, ignore={"train.progress"}) == [
        "method.threshold: 0.75 -> 0.9", "optim.lr: 0.02 -> 0.01"]
    supervised = load_config(overrides=["method.name=supervised"]).to_dict()
    changed = config_differences(supervised, before)
    assert "method.name: supervised -> hpal" in changed and "method.threshold: (unset) -> 0.75" in changed
    assert config_differences(before, before) == []
    # a checkpoint written before method.two_streams existed: with the defaults, the old behaviour is no change
    hpal = load_config(overrides=["method.name=hpal"]).to_dict()
    older = copy.deepcopy(hpal)
    del older["method"]["two_streams"]
    assert config_differences(older, hpal) == ["method.two_streams: (unset) -> False"]
    assert config_differences(older, hpal, defaults=hpal) == []
    two_streams = load_config(overrides=["method.name=hpal", "method.two_streams=true"]).to_dict()
    assert config_differences(older, two_streams, defaults=hpal) == ["method.two_streams: False -> True"]


def test_parse_overrides_nests():
    assert parse_overrides(["a.b=1", "a.c=x=y"]) == {"a": {"b": "1", "c": "x=y"}}


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs").glob("*/*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_loads(path):
    """Every file in configs/ loads (active-learning ones through their loader) at its dataset's voxel size."""
    from pcseg.active.config import load_active_config
    from pcseg.data.dataset import DEFAULTS

    cfg = load_config(path)  # `pcseg train` skips an active-learning file's `active:` section
    if "active" in read_yaml(path):
        assert load_active_config(path)[0] == cfg
    folder = path.parent.name  # real datasets train on their preprocessed form: the folder names the dataset
    assert cfg.data.voxel_size == DEFAULTS[folder if folder in DEFAULTS else cfg.data.dataset].voxel_size


def test_synthetic_configs_are_the_demo_runs():
    """configs/synthetic/{supervised,ce_0.1pct,cpcm_0.1pct}.yaml train exactly what `pcseg demo` trains."""
    from pcseg.engine.demo import DEMO, EXTRA_RUNS, RUNS

    folder = Path(__file__).resolve().parents[2] / "configs" / "synthetic"
    runs = dict(RUNS + list(EXTRA_RUNS.values()))
    pairs = [("supervised", "supervised full"), ("ce_0.1pct", "supervised 0.1%"), ("cpcm_0.1pct", "cpcm 0.1%")]
    for name, row in pairs:
        shipped = load_config(folder / f"{name}.yaml", ["train.out_dir=x"])
        assert shipped == load_config(overrides=DEMO + runs[row] + ("train.out_dir=x",)), name
