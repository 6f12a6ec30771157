"""The `pcseg` command: demo, train, eval, predict, config, preprocess, visualize, export, labels, select, active-loop,
doctor.

Errors a user can fix (a config typo, a missing path, a checkpoint that does not fit, a diverged run) print one
line `pcseg <command>: error: ...` and exit with status 2; set PCSEG_DEBUG=1 for the traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

OVERRIDES_HELP = ("config overrides section.key=value, e.g. optim.lr=0.02 data.budget=ratio:0.001 "
                  "model.channels=[32,64,128] (`pcseg config` lists every key)")


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcseg",
        description="3D point-cloud semantic segmentation from very few labels. Start with `pcseg demo`.",
        epilog="Configs are YAML files in configs/ that override typed defaults; any key can be overridden on the "
               "command line as section.key=value.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="train and evaluate full vs 0.1%% supervision on synthetic rooms",
                       description="Train the SpUNet on generated indoor rooms with full labels and with a 0.1%% "
                                   "label budget, evaluate both on held-out rooms and print a table (about 5 "
                                   "minutes on 2 CPU cores); --with cpcm adds CPCM on the same budget.")
    p.add_argument("--out", default="runs/demo", help="output folder (checkpoints, logs, results.json)")
    p.add_argument("--quick", action="store_true", help="tiny data and model, a few steps (seconds; for tests)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--with", dest="with_rows", action="append", default=[], metavar="METHOD",
                   help="add a method's row to the table (repeatable): cpcm (0.1%% labels, about 4 more minutes)")
    _add_overrides(p)

    p = sub.add_parser("train", help="train a model from a config",
                       description="Train from a YAML config (+ overrides). Writes last.pt, config.yaml, log.csv "
                                   "and TensorBoard events to train.out_dir; evaluates on data.val_split at the end. "
                                   "Launch with `torchrun --nproc_per_node N -m pcseg.cli train ...` for DDP.")
    p.add_argument("config", help="YAML config file, e.g. configs/synthetic/supervised.yaml")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (e.g. <out_dir>/last.pt)")
    p.add_argument("--out", help="output folder (same as train.out_dir=...)")
    _add_overrides(p)

    p = sub.add_parser("eval", help="evaluate a checkpoint (mIoU, per-class IoU, accuracy)",
                       description="Evaluate a checkpoint at full resolution on data.val_split (or --split). Uses "
                                   "the config stored in the checkpoint, updated by --config and overrides. With "
                                   "--pred DIR (and no checkpoint): score the prediction files of `pcseg predict` "
                                   "or `--save-predictions` with the benchmark's class list and ignore rules.")
    p.add_argument("checkpoint", nargs="?", help="checkpoint file written by `pcseg train` (last.pt)")
    p.add_argument("--pred", metavar="DIR", help="score this predictions folder instead of a checkpoint (config: "
                                                 "the folder's pcseg_predictions.json <- --config <- overrides)")
    p.add_argument("--config", help="YAML file applied over the checkpoint's config")
    p.add_argument("--split", help="split to evaluate (default: data.val_split)")
    p.add_argument("--tta", type=int, metavar="R", help="rotation test-time augmentation over R angles")
    p.add_argument("--save-predictions", metavar="DIR", help="write <DIR>/<scene_id>.npy: label of every point")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    _add_overrides(p)

    p = sub.add_parser("predict", help="predict every point of a split into benchmark submission files",
                       description="Predict every point of every scene of a split at full resolution and write "
                                   "the benchmark's files: ScanNet <scene>.txt (nyu40 ids), SemanticKITTI "
                                   "sequences/NN/predictions/*.label, <scene_id>.npy class indices otherwise. "
                                   "Resumable; a folder of another run is refused unless --overwrite.")
    p.add_argument("config", help="YAML file applied over the checkpoint's config (e.g. the dataset's root)")
    p.add_argument("checkpoint", help="checkpoint file written by `pcseg train` (last.pt)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--split", help="split to predict, e.g. val or test (default: data.val_split)")
    p.add_argument("--max-points", type=int, default=0, metavar="N",
                   help="cut larger scenes into overlapping chunks of at most N points (default 0: whole scenes)")
    p.add_argument("--overlap", type=float, default=1.0, metavar="M", help="metres of context around each chunk")
    p.add_argument("--merge", choices=("mean", "core"), default="mean",
                   help="mean: average probabilities over all chunks holding a point; core: take each point from "
                        "the chunk whose core holds it (exact when the receptive field fits in the overlap)")
    p.add_argument("--tta", type=int, metavar="R", help="test-time augmentation over R rotations about z "
                                                        "(default: eval.tta_rotations)")
    p.add_argument("--flip", choices=("x", "y", "xy"), help="test-time augmentation: also mirror along these axes")
    p.add_argument("--scales", default="1.0", metavar="S,S,...", help="test-time augmentation scales, e.g. 0.9,1,1.1")
    p.add_argument("--probs", action="store_true",
                   help="also write probs/<scene_id>.npy: (N, K) float16 class probabilities")
    p.add_argument("--overwrite", action="store_true", help="replace the files of another run in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_overrides(p)

    p = sub.add_parser("config", help="print the resolved config with every key and its meaning",
                       description="Print defaults <- CONFIG <- overrides as YAML, one comment per key.")
    p.add_argument("config", nargs="?", help="YAML config file (default: the built-in defaults)")
    _add_overrides(p)

    p = sub.add_parser("preprocess", help="convert a raw dataset release or your own folder into pcseg's on-disk "
                                          "format",
                       description="Convert ScanNet v2, S3DIS or SemanticKITTI from their official layout, or a "
                                   "folder of your own PLY / LAS / LAZ / NPY / NPZ / TXT scenes described by a YAML "
                                   "(pcseg.data.folder; every file is checked against it and the bad ones are "
                                   "listed with the reason and left out), into a fast format; resumable (finished "
                                   "scenes are skipped).")
    p.add_argument("dataset", choices=("scannet", "s3dis", "semantickitti", "folder"), help="dataset of SRC")
    p.add_argument("src", help="raw release folder (e.g. ScanNet's scans/, S3DIS's Stanford3dDataset_v1.2)")
    p.add_argument("dst", help="output folder (becomes data.root with data.dataset=preprocessed)")
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    p.add_argument("--spec", metavar="YAML", help="folder: the dataset YAML (default: SRC/pcseg_dataset.yaml)")

    from pcseg.pretrain import add_pretrain_parsers

    add_pretrain_parsers(sub)

    from pcseg.vis.commands import add_export_parser, add_visualize_parser

    add_visualize_parser(sub)
    add_export_parser(sub)

    from pcseg.active.commands import add_active_parsers, add_labels_parsers

    add_active_parsers(sub)

    p = sub.add_parser("labels", help="label budget files", description="Inspect label budget files.")
    lsub = p.add_subparsers(dest="labels_command", metavar="ACTION")
    lsub.required = True
    q = lsub.add_parser("stats", help="labeled points per scene and per class of a budget file",
                        description="Print the scenes, labeled points and (with a config naming the dataset) the "
                                    "labeled points per class of a budget file.")
    q.add_argument("file", help="budget file ({scene_id: LongTensor of point indices}, torch.save)")
    q.add_argument("--config", help="config naming the dataset (for per-class counts)")
    _add_overrides(q)
    add_labels_parsers(lsub)

    from pcseg.doctor import add_doctor_parser

    add_doctor_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    # KEY=VALUE overrides may follow options (`train cfg.yaml --out runs/x optim.lr=0.1`), which argparse leaves
    # unparsed once the positional list has been matched: they join the command's overrides.
    args, extra = parser.parse_known_args(argv)
    unknown = [e for e in extra if e.startswith("-") or "=" not in e]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error("unrecognized arguments: " + " ".join(unknown or extra))
    if extra:
        args.overrides = list(args.overrides) + extra
    command = getattr(args, "func", None) or COMMANDS[args.command]  # `func`: subcommands defined elsewhere
    try:
        return command(args)
    except KeyboardInterrupt:
        print(f"pcseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for the errors a user can fix; everything else keeps its traceback
        if os.environ.get("PCSEG_DEBUG") or not _is_user_error(err):
            raise
        print(f"pcseg {args.command}: error: {err}", file=sys.stderr)
        return 2


def _is_user_error(err: Exception) -> bool:
    from pcseg.engine.checkpoint import CheckpointError
    from pcseg.engine.config import ConfigError
    from pcseg.engine.trainer import TrainingDiverged

    return isinstance(err, (ConfigError, CheckpointError, TrainingDiverged, FileNotFoundError, ValueError))


def cmd_demo(args: argparse.Namespace) -> int:
    from pcseg.engine.demo import demo_runs, format_table, run_demo

    rows = run_demo(Path(args.out), quick=args.quick, extra=tuple(args.overrides), progress=not args.no_progress,
                    runs=demo_runs(args.with_rows))
    print(format_table(rows))
    print(f"\nresults: {Path(args.out) / 'results.json'}")
    for row in rows:
        if row["png"]:
            print(f"{row['name']}: {row['png']} (first held-out room: ground truth | prediction | errors in red)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pcseg.engine.build import build_trainer
    from pcseg.engine.config import load_config
    from pcseg.engine import distributed as dist_utils

    overrides = list(args.overrides) + ([f"train.out_dir={args.out}"] if args.out else [])
    cfg = load_config(args.config, overrides)
    if args.resume and not Path(args.resume).is_file():
        raise FileNotFoundError(f"--resume: checkpoint not found: {args.resume}")
    trainer = build_trainer(cfg)
    try:
        result = trainer.fit(resume=args.resume)
    finally:
        dist_utils.cleanup()
    if trainer.rank == 0:
        print(f"trained {result['step']} steps; checkpoint {trainer.checkpoint_path}")
        if result["eval"] is not None:
            _print_metrics(result["eval"])
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pcseg.engine.build import evaluate_checkpoint, load_checkpoint_config

    if args.checkpoint is not None and "=" in args.checkpoint and not Path(args.checkpoint).is_file():
        args.checkpoint, args.overrides = None, [args.checkpoint] + list(args.overrides)  # only overrides came
    if args.pred is not None:
        return _eval_predictions(args)
    if args.checkpoint is None:
        raise ValueError("give a checkpoint, or --pred DIR to score a predictions folder")
    overrides = list(args.overrides) + ([f"eval.tta_rotations={args.tta}"] if args.tta else [])
    cfg, state = load_checkpoint_config(args.checkpoint, args.config, tuple(overrides))
    save = Path(args.save_predictions) if args.save_predictions else None
    metrics = evaluate_checkpoint(cfg, state, args.checkpoint, save_dir=save, split=args.split)
    _print_metrics(metrics)
    if save is not None:
        print(f"predictions: {save}/<scene_id>.npy")
    if args.json:
        _write_json(args.json, metrics)
    return 0


def _write_json(path: str, metrics: dict) -> None:
    """`--json FILE`: the metrics, written atomically (parents created)."""
    from pcseg.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(metrics, indent=2))


def _eval_predictions(args: argparse.Namespace) -> int:
    from pcseg.engine.config import load_config
    from pcseg.engine.predict import MANIFEST, evaluate_predictions, read_manifest

    if args.checkpoint is not None or args.tta or args.save_predictions:
        raise ValueError("--pred scores a predictions folder: give no checkpoint, --tta or --save-predictions")
    if not Path(args.pred).is_dir():
        raise FileNotFoundError(f"--pred: predictions folder not found: {args.pred}")
    manifest = read_manifest(args.pred)
    if manifest is None and not (args.config or args.overrides):
        raise ValueError(f"{args.pred} has no {MANIFEST}: pass --config (or overrides) naming the dataset")
    cfg = load_config(args.config, tuple(args.overrides), base=manifest["config"] if manifest else None)
    metrics = evaluate_predictions(cfg, args.pred, split=args.split, progress=cfg.train.progress)
    _print_metrics(metrics)
    print(f"{metrics['scenes']} scenes, {metrics['format']} files, {metrics['rule']} scoring rule")
    if args.json:
        _write_json(args.json, metrics)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from pcseg.engine.build import load_checkpoint_config
    from pcseg.engine.predict import TTA, predict_split

    try:
        scales = tuple(float(s) for s in args.scales.split(","))
    except ValueError:
        raise ValueError(f"--scales: expected comma-separated numbers, got {args.scales!r}") from None
    cfg, state = load_checkpoint_config(args.checkpoint, args.config, tuple(args.overrides))
    tta = TTA(rotations=args.tta or cfg.eval.tta_rotations, flips=tuple(args.flip or ""), scales=scales)
    report = predict_split(cfg, state, args.checkpoint, args.out, split=args.split, max_points=args.max_points,
                           overlap=args.overlap, merge=args.merge, tta=tta, probs=args.probs,
                           overwrite=args.overwrite, progress=cfg.train.progress and not args.no_progress)
    print(f"predicted {report['written']} scenes ({report['points']:,} points, {report['seconds']:.1f} s), skipped "
          f"{report['skipped']} already written; {report['format']} files in {report['out']}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from pcseg.engine.config import format_config, load_config

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).is_file():  # only overrides were given
        config, overrides = None, [config] + overrides
    print(format_config(load_config(config, overrides)), end="")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    from pcseg.data import preprocess

    if not Path(args.src).is_dir():
        raise FileNotFoundError(f"source folder not found: {args.src}")
    if args.spec and args.dataset != "folder":
        raise ValueError("--spec is for the folder dataset")
    options = {"spec": args.spec} if args.spec else {}
    report = preprocess(args.dataset, args.src, args.dst, workers=args.workers, **options)  # prints its summary
    if report.failures and args.dataset == "folder":
        print(f"pcseg preprocess: {len(report.failures)} bad file(s) left out (listed above); the "
              f"{report.written + report.skipped} good scenes are in {args.dst} (data.dataset=preprocessed "
              f"data.root={args.dst}); fix the files and run again to add them", file=sys.stderr)
        return 1
    if report.failures:
        print(f"pcseg preprocess: {len(report.failures)} scene(s) failed (listed above); run again to retry them",
              file=sys.stderr)
        return 1
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from pcseg.weak import budget_stats, format_budget_stats, read_budget

    if not Path(args.file).is_file():
        raise FileNotFoundError(f"budget file not found: {args.file}")
    budget = read_budget(args.file)
    source = None
    if args.config or args.overrides:
        from pcseg.engine.build import build_source
        from pcseg.engine.config import load_config

        cfg = load_config(args.config, args.overrides)
        source = build_source(cfg, cfg.data.train_split)
    print(format_budget_stats(budget_stats(budget, source)))
    return 0


def _print_metrics(metrics: dict) -> None:
    print(f"mIoU {100 * metrics['miou']:.1f}  accuracy {100 * metrics['acc']:.1f}  ({metrics['points']:,} points)")
    width = max(len(n) for n in metrics["iou"])
    for name, iou in metrics["iou"].items():
        print(f"  {name:<{width}}  {'absent' if iou != iou else f'{100 * iou:5.1f}'}")


COMMANDS = {"demo": cmd_demo, "train": cmd_train, "eval": cmd_eval, "config": cmd_config,
            "preprocess": cmd_preprocess, "labels": cmd_labels, "predict": cmd_predict}


if __name__ == "__main__":
    sys.exit(main())
