import subprocess
import sys
from pathlib import Path

import pytest

from pcseg.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_texts(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "train", "eval", "preprocess", "labels", "config"):
        assert command in out
    for command in (["demo"], ["train"], ["eval"], ["preprocess"], ["labels", "stats"], ["config"]):
        with pytest.raises(SystemExit) as exit_:
            main(command + ["--help"])
        assert exit_.value.code == 0
        assert "usage: pcseg " + " ".join(command) in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "nope.yaml"], "config file not found: nope.yaml"),
    (["config", "optim.lrr=1"], "unknown key 'optim.lrr' (did you mean 'lr'?); valid keys of optim: name, lr"),
    (["train", str(REPO / "configs/scannet/supervised.yaml"), "data.dataset=scannet", "data.root="],
     "data.root: scannet needs the folder"),
    (["eval", "missing.pt"], "checkpoint not found: missing.pt"),
    (["labels", "stats", "missing.pt"], "budget file not found: missing.pt"),
    (["preprocess", "s3dis", "/no/such/folder", "out"], "source folder not found: /no/such/folder"),
    (["train", str(REPO / "configs/scannet/supervised.yaml"), "data.root=/no/such/scannet"],
     "data.root: dataset folder not found: /no/such/scannet"),
    (["train", str(REPO / "configs/scannet/supervised.yaml"), "data.budget=nofile.pt"],
     "data.budget: budget file not found: nofile.pt"),
])
def test_user_errors_are_one_line_with_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith(f"pcseg {argv[0]}: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_entry_point_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "pcseg.cli", "train", "missing.yaml", "train.steps=x"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "pcseg train: error: config file not found: missing.yaml"


def test_every_command_has_a_handler():
    from pcseg.cli import COMMANDS

    choices = build_parser()._subparsers._group_actions[0].choices
    assert {"demo", "train", "eval", "config", "preprocess", "labels"} <= set(choices)
    for name, sub in choices.items():
        assert name in COMMANDS or callable(sub.get_default("func")), name
