"""Command-line parts of active learning: `pcseg select`, `pcseg active-loop`, `pcseg labels export|import`.

Each parser sets `func` (the CLI calls it with the parsed arguments; it returns the exit code). Errors a user can
fix are raised as ValueError / FileNotFoundError / ConfigError, which the CLI prints as one line.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from pcseg.active.uncertainty import MODEL_FREE, STRATEGIES

OVERRIDES_HELP = ("config overrides section.key=value; active.key=value sets the selection (e.g. "
                  "active.strategy=margin active.radius=0.3), anything else the engine config")


def add_active_parsers(subparsers) -> None:
    """Add `select` and `active-loop` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "select", help="pick the next points to label with a trained model, or from geometry alone (active "
                       "learning)",
        description="Score every training scene with a checkpoint, pick exactly the requested number of points "
                    "(hierarchical margin + feature-distance suppression by default; --strategy coverage spreads "
                    "the picks over the geometry with no model, for a dataset's first labels) and either label "
                    "them from the ground truth (--oracle: writes a NEW budget file = previous labels + picks) or "
                    "export them for annotators (--export: PLY + CSV per scene; merge the filled CSVs with `pcseg "
                    "labels import`). Interrupted runs resume: per-scene scores are cached next to the output.")
    p.add_argument("--checkpoint", help="checkpoint of the model that scores the points (not needed for the "
                                        "coverage and random strategies)")
    p.add_argument("--config", help="YAML config (with an optional active: section) applied over the checkpoint's")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--points", type=int, help="points to pick over the whole training set")
    size.add_argument("--ratio", type=float, help="fraction of all training points to pick")
    p.add_argument("--budget", help="budget file of the points labeled so far (default: the config's data.budget)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--oracle", action="store_true", help="simulation: label the picks from the ground truth")
    mode.add_argument("--export", metavar="DIR", help="annotator mode: write picks.pt, PLY and CSV files to DIR")
    p.add_argument("--out", help="--oracle: the new budget file to write (must not exist)")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="point score (same as active.strategy=...); coverage and random need no model")
    p.add_argument("--cache", help="score cache folder (default: next to the output)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    p.set_defaults(func=run_select)

    p = subparsers.add_parser(
        "active-loop", help="simulate active learning: train, select with a ground-truth oracle, retrain",
        description="Initial random budget (active.initial), then active.rounds rounds of: train -> select "
                    "active.round_ratio of the points with the model -> the oracle labels them -> retrain. Prints "
                    "a per-round table (labeled points, mIoU) and writes OUT/rounds.json; rerunning continues.")
    p.add_argument("config", help="YAML config, e.g. configs/synthetic/hpal.yaml")
    p.add_argument("--out", help="output folder (default: train.out_dir)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    p.set_defaults(func=run_active_loop_command)


def add_labels_parsers(labels_subparsers) -> None:
    """Add `export` and `import` to the subparsers of `pcseg labels`."""
    q = labels_subparsers.add_parser(
        "export", help="write PLY + CSV files of a picks file for annotators",
        description="Write, per scene with picks, a PLY with the picked points highlighted and a CSV "
                    "(scene,index,x,y,z,label) whose label column the annotators fill; plus classes.csv.")
    q.add_argument("picks", help="picks file ({scene_id: indices}, e.g. DIR/picks.pt from `pcseg select --export`)")
    q.add_argument("--out", required=True, help="output folder")
    _add_source_options(q)
    q.add_argument("--budget", help="budget file of the points labeled so far (shown in the PLY's label property)")
    q.set_defaults(func=run_labels_export)

    q = labels_subparsers.add_parser(
        "import", help="merge labeled CSVs from annotators into a new budget file",
        description="Validate annotator CSVs (unknown class id or name, index out of range, duplicates, points "
                    "already labeled are refused with file and line) and write a NEW budget file = previous "
                    "budget + the labeled points, plus NEW.labels.pt with the annotators' labels.")
    q.add_argument("csv", nargs="+", metavar="CSV [KEY=VALUE]",
                   help="CSV files with the label column filled (class id or class name), then optional overrides")
    q.add_argument("--budget", help="budget file of the points labeled so far (default: none)")
    q.add_argument("--out", required=True, help="the new budget file to write (must not exist)")
    q.add_argument("--config", help="config naming the dataset")
    q.add_argument("--checkpoint", help="checkpoint whose config names the dataset")
    q.set_defaults(func=run_labels_import)


def _add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config naming the dataset")
    p.add_argument("--checkpoint", help="checkpoint whose config names the dataset")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def _configs(config: Optional[str], checkpoint: Optional[str], overrides) -> Tuple[object, object, Optional[Dict]]:
    """(engine Config, ActiveConfig, checkpoint state or None)."""
    from pcseg.active.config import load_active_config
    from pcseg.engine import checkpoint as ckpt

    state = ckpt.load(checkpoint) if checkpoint else None
    if state is not None and "config" not in state:
        raise ckpt.CheckpointError(f"{checkpoint} has no stored config")
    cfg, active = load_active_config(config, list(overrides), base=state["config"] if state else None)
    return cfg, active, state


def _previous_budget(path: Optional[str], cfg, source) -> Dict[str, torch.Tensor]:
    """The budget labeled so far: --budget, else the config's data.budget (a file or a sampler spec), else {}."""
    from pcseg.weak.budget import read_budget, sample_budget

    spec = path or cfg.data.budget
    if not spec:
        return {}
    if Path(spec).is_file():
        return read_budget(spec)
    if path is None and ":" in spec:
        return sample_budget(source, spec, cfg.data.budget_seed)
    raise FileNotFoundError(f"budget file not found: {spec}")


def _model_key(checkpoint: str, state: Dict) -> str:
    stat = Path(checkpoint).stat()
    return f"{Path(checkpoint).resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{state.get('step')}"


def run_select(args: argparse.Namespace) -> int:
    from pcseg.active.annotator import export_picks
    from pcseg.active.select import select_points, write_round
    from pcseg.engine import checkpoint as ckpt
    from pcseg.engine.build import build_dataset, build_method, build_source
    from pcseg.engine.trainer import resolve_device
    from pcseg.weak.budget import write_budget

    if args.oracle and not args.out:
        raise ValueError("--oracle needs --out: the new budget file to write")
    if args.export and args.out:
        raise ValueError("--out is for --oracle; with --export the picks go to DIR/picks.pt")
    target = Path(args.out) if args.oracle else Path(args.export) / "picks.pt"
    if target.exists():
        raise ValueError(f"{target} exists; every selection round is written to a new file")
    overrides = list(args.overrides) + ([f"active.strategy={args.strategy}"] if args.strategy else [])
    cfg, active, state = _configs(args.config, args.checkpoint, overrides)
    if state is None and active.strategy not in MODEL_FREE:
        raise ValueError(f"active.strategy={active.strategy} scores points with a model: give --checkpoint (or "
                         "--strategy coverage to pick from the geometry alone)")
    source = build_source(cfg, cfg.data.train_split)
    dataset = build_dataset(cfg, cfg.data.train_split, False, source)
    previous = _previous_budget(args.budget, cfg, source)
    device = resolve_device(cfg.train.device)
    method, key = None, active.strategy
    if state is not None and active.strategy not in MODEL_FREE:
        method = build_method(cfg, dataset.num_classes, dataset.in_channels)
        ckpt.load_model_state(method, state["model"], source=args.checkpoint)
        method.to(device)
        key = _model_key(args.checkpoint, state)
    cache = Path(args.cache) if args.cache else target.with_name(target.stem + ".cache")
    selection = select_points(source, active, previous, ratio=args.ratio, num_points=args.points, method=method,
                              voxel_size=dataset.voxel_size, features=dataset.features, device=device,
                              labelable_only=args.oracle, cache_dir=cache, model_key=key,
                              progress=not args.no_progress)
    print(selection.summary())
    if args.oracle:
        write_round(previous, selection.picks, target)
        labeled = sum(len(v) for v in previous.values()) + selection.budget
        print(f"new budget: {target} ({labeled} labeled points); train on it with data.budget={target}")
        return 0
    files = export_picks(selection.picks, source, target.parent, previous)
    write_budget(selection.picks, target)
    print(f"picks: {target}; {len(files) - 1} files for annotators in {target.parent} (fill the label column of "
          f"the CSVs, then: pcseg labels import {target.parent}/*.csv --out NEW.pt ...)")
    return 0


def run_active_loop_command(args: argparse.Namespace) -> int:
    from pcseg.active.config import load_active_config
    from pcseg.active.loop import run_active_loop

    overrides = list(args.overrides) + (["train.progress=false"] if args.no_progress else [])
    cfg, active = load_active_config(args.config, overrides)
    out = Path(args.out or cfg.train.out_dir)
    run_active_loop(cfg, active, out, progress=not args.no_progress, report=print)
    print(f"\nper-round table: {out / 'rounds.json'}; budgets: {out / 'budgets'}")
    return 0


def _labels_source(args: argparse.Namespace):
    from pcseg.engine.build import build_source

    if not (args.config or args.checkpoint or args.overrides):
        raise ValueError("name the dataset with --config, --checkpoint or data.* overrides")
    cfg, _, _ = _configs(args.config, args.checkpoint, args.overrides)
    return build_source(cfg, cfg.data.train_split)


def run_labels_export(args: argparse.Namespace) -> int:
    from pcseg.active.annotator import export_picks
    from pcseg.weak.budget import read_budget

    picks = read_budget(args.picks)
    previous = read_budget(args.budget) if args.budget else None
    files = export_picks(picks, _labels_source(args), args.out, previous)
    print(f"{len(files) - 1} files for annotators in {args.out} ({sum(len(v) for v in picks.values())} points)")
    return 0


def run_labels_import(args: argparse.Namespace) -> int:
    from pcseg.active.annotator import import_annotations, labels_path

    if Path(args.out).exists():
        raise ValueError(f"{args.out} exists; label rounds are written to new files")
    if args.budget and not Path(args.budget).is_file():
        raise FileNotFoundError(f"budget file not found: {args.budget}")
    args.overrides = [item for item in args.csv if "=" in item and not Path(item).is_file()]
    files = [item for item in args.csv if item not in args.overrides]
    path, annotations = import_annotations(files, _labels_source(args), args.budget or {}, args.out)
    print(f"imported {annotations.num_labeled} labeled points ({annotations.skipped} rows left unlabeled) -> "
          f"{path} (labels: {labels_path(path)})")
    return 0
