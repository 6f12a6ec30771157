"""The pretrain-2d / pretrain / finetune commands, on the real KITTI object sample where it is available."""
import pytest

from pcseg.cli import main

TINY_MODEL = ["model.name=spunet14", "model.base_channels=8", "model.channels=[8,8,8,8,8,8,8,8]",
              "model.backend=native", "train.device=cpu", "train.progress=false"]


def test_pretrain_commands_on_kitti_sample(shared_data, tmp_path, capsys):
    config = tmp_path / "kitti.yaml"
    config.write_text(f"data:\n  dataset: kitti_object\n  root: {shared_data / 'kitti' / 'object'}\n"
                      "  train_split: training\n  voxel_size: 0.5\n  batch_size: 1\n"
                      f"method:\n  name: slidr\n  image_encoder: {tmp_path / 'enc.pt'}\n  image_scale: 0.25\n"
                      f"  superpixel_cache: {tmp_path / 'sp'}\n  superpixels: grid\n"
                      "  image_channels: [8, 8]\n  image_layers: [1, 1]\n")
    args = [str(config), "method.pretext_steps=2", "method.pretext_batch=2", "method.pretext_crop=32"]
    assert main(["pretrain-2d", "--no-progress", *args]) == 0
    assert "image encoder: " + str(tmp_path / "enc.pt") + " (1 images, 2 steps" in capsys.readouterr().out
    assert main(["pretrain", "--out", str(tmp_path / "pre"), str(config), "train.steps=1", *TINY_MODEL]) == 0
    out = capsys.readouterr().out
    assert "pre-trained 1 steps (InfoNCE " in out and (tmp_path / "pre" / "last.pt").is_file()
    assert len(list((tmp_path / "sp").glob("*.npy"))) == 1


def test_command_errors(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  dataset: synthetic_outdoor\nmethod:\n  name: slidr\n")
    assert main(["pretrain", str(config)]) == 2
    assert "method.image_encoder is empty" in capsys.readouterr().err
    assert main(["pretrain", str(config), f"method.image_encoder={tmp_path / 'none.pt'}"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["finetune", "--pretrained", "x.pt", str(config)]) == 2
    assert "pcseg finetune needs method.name supervised or linear_probe" in capsys.readouterr().err
    assert main(["finetune", "--pretrained", str(tmp_path / "none.pt"), str(config), "method.name=supervised"]) == 2
    assert "--pretrained: checkpoint not found" in capsys.readouterr().err
    config.write_text("data:\n  dataset: synthetic_outdoor\n")
    assert main(["pretrain-2d", str(config)]) == 2
    assert "pcseg pretrain-2d needs method.name slidr" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["pretrain-2d", "pretrain", "finetune"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "config" in capsys.readouterr().out
