"""A short pretrain-2d -> SLidR pretrain -> 1%-scan fine-tune / linear probe run on tiny synthetic street scans."""
import math

import pytest
import torch

from pcseg.data import SyntheticOutdoor
from pcseg.engine.checkpoint import CheckpointError
from pcseg.engine.config import ConfigError, load_config
from pcseg.pretrain import (
    EveryNthScan,
    build_finetuner,
    build_pretrainer,
    load_pretrained_backbone,
    pretrain_image_encoder,
)

TINY = ["data.dataset=synthetic_outdoor", "data.voxel_size=0.25", "data.batch_size=2", "model.name=spunet14",
        "model.base_channels=8", "model.channels=[8,8,8,8,8,8,8,8]", "model.backend=native", "train.steps=2",
        "train.log_every=1", "train.checkpoint_every=2", "train.progress=false", "train.device=cpu",
        "optim.name=adamw", "optim.lr=0.01"]


def _source(split, n):
    return SyntheticOutdoor(split=split, num_scenes=n, beams=8, azimuth_steps=256, image_size=(96, 32))


def test_pretrain_then_finetune(tmp_path):
    train, val = _source("train", 4), _source("val", 1)
    slidr = TINY + ["method.name=slidr", f"method.image_encoder={tmp_path / 'enc.pt'}", "method.min_points=2",
                    "method.n_segments=40", f"method.superpixel_cache={tmp_path / 'sp'}", "method.image_channels=[8,8]",
                    "method.image_layers=[1,1]", "method.pretext_steps=3", "method.pretext_batch=2",
                    "method.pretext_crop=24", f"train.out_dir={tmp_path / 'pre'}"]
    cfg = load_config(overrides=slidr)
    with pytest.raises(FileNotFoundError, match="pcseg pretrain-2d"):
        build_pretrainer(cfg, train)
    result = pretrain_image_encoder(cfg, tmp_path / "enc.pt", source=train, progress=False)
    assert result["images"] == 4 and result["steps"] == 3 and 0 <= result["accuracy"] <= 1

    trainer = build_pretrainer(cfg, train)
    out = trainer.fit()
    assert out["step"] == 2 and math.isfinite(out["losses"]["slidr"]) and out["losses"]["slidr"] > 0
    assert out["eval"] is None
    pretrained = tmp_path / "pre" / "last.pt"
    state = torch.load(pretrained, weights_only=False)
    assert any(k.startswith("point_head.") for k in state["model"])
    assert len(list((tmp_path / "sp").glob("*.npy"))) == 4  # one SLIC per image, cached

    for method in ("supervised", "linear_probe"):
        fine = load_config(overrides=TINY + [f"method.name={method}", f"train.out_dir={tmp_path / method}"])
        tuner = build_finetuner(fine, pretrained, scan_every=2, sources={"train": train, "val": val})
        assert tuner.sampler.n == 2  # scans 0 and 2
        backbone = {k: v for k, v in tuner.method.backbone.state_dict().items()}
        expected = {k[len("backbone."):]: v for k, v in state["model"].items() if k.startswith("backbone.")}
        assert all(torch.equal(backbone[k], expected[k]) for k in expected)
        result = tuner.fit()
        assert result["step"] == 2 and 0 <= result["eval"]["miou"] <= 1
        after = tuner.method.backbone.state_dict()
        frozen = all(torch.equal(after[k], expected[k]) for k in expected)
        assert frozen == (method == "linear_probe")  # the probe leaves weights and BN statistics untouched


def test_finetune_errors(tmp_path):
    cfg = load_config(overrides=TINY + ["method.name=supervised", f"train.out_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="--pretrained: checkpoint not found"):
        build_finetuner(cfg, tmp_path / "none.pt", sources={"train": _source("train", 1), "val": _source("val", 1)})
    with pytest.raises(ConfigError, match="needs method.name slidr"):
        build_pretrainer(cfg, _source("train", 1))
    (tmp_path / "weights.pt").write_bytes(b"")
    both = load_config(overrides=TINY + ["method.name=supervised", f"train.init_from={tmp_path / 'weights.pt'}"])
    with pytest.raises(ConfigError, match="--pretrained .*weights.pt and train.init_from=.*weights.pt both set"):
        build_finetuner(both, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="scan-every must be >= 1"):
        EveryNthScan(_source("train", 1), 0)
    trainer = build_finetuner(cfg, sources={"train": _source("train", 1), "val": _source("val", 1)})
    torch.save({"model": {"head.weight": torch.zeros(1)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no backbone weights"):
        load_pretrained_backbone(trainer.method, tmp_path / "foreign.pt")
    torch.save({"model": {"backbone.stem.0.weight": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_pretrained_backbone(trainer.method, tmp_path / "other.pt")
