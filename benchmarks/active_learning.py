"""Active-learning benchmark on generated rooms (the synthetic default), over seeds.

At equal final budgets (default 0.1% of the training points, the first fifth labeled at random and the rest added
in `--rounds` selection rounds) it compares:
    HPAL          hierarchical margin + feature-distance suppression selection, mean-teacher training, every round
    random+MT     random selection of the same number of points, the same mean-teacher training (final budget;
                  with active.warm_start=true random picks in the same warm-started rounds as HPAL, whose round 0,
                  the same training, it copies)
    CE            plain cross-entropy on that random final budget
    full          cross-entropy with every label (the reference of the ratio); with active.warm_start=true also
                  one training as long as all the warm-started rounds together, (rounds + 1) x train.steps
and prints the per-round table (labeled points, mIoU as mean +- half the range over seeds) and the final
comparison with the ratio to full supervision, on the validation rooms and, for the final models, again on held-out
test rooms (`--test-scenes`, 64 by default) that no setting of the benchmark was chosen on.

    python benchmarks/active_learning.py                     # the authors' 4 rounds: about 75 minutes per seed
    python benchmarks/active_learning.py --quick             # seconds, a smoke test, not a score
    python benchmarks/active_learning.py --seeds 0 1 2 data.num_train_scenes=24 train.threads=2
    python benchmarks/active_learning.py active.random_share=0.5   # active.* overrides change the HPAL selection
    python benchmarks/active_learning.py method.two_streams=true   # method.* ones the HPAL and random+MT training
    python benchmarks/active_learning.py active.warm_start=true    # each round starts from the previous round's model

Training runs on one thread (train.threads=1) so that the benchmark can share the 2-core machine with another run;
`train.threads=2` when it runs alone. Finished trainings are reused, so `--seeds 0` and `--seeds 1` can run side by
side into one `--out` and a final `--seeds 0 1` prints the table. Results go to `<out>/results.json`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pcseg.atomic import write_text_atomic  # noqa: E402
from pcseg.engine.demo import DEMO, LABEL_EFFICIENCY  # noqa: E402
from seed_spread import compare, spread  # noqa: E402

# The demo's model on the label-efficiency rooms and schedule (64 rooms of 150k points, 600 steps), one thread.
BENCH = DEMO + LABEL_EFFICIENCY + ("model.backend=native", "train.threads=1")
# The teacher's pseudo labels phase in over a third of the steps and need 0.95 confidence: with the authors' 0.75 a
# random 0.1% budget scored 65.6 mIoU against 80.4 for CE alone, with 0.95 80.4 (seed 0; an eval-mode teacher,
# method.teacher_norm=running, the default then).
HPAL = ("method.name=hpal", "method.rampup_steps=200", "method.threshold=0.95")
QUICK = ("data.num_train_scenes=3", "data.num_val_scenes=1", "data.points_per_scene=3000", "train.steps=3",
         "model.channels=[4,4,4,4,4,4,4,4]", "model.base_channels=4", "train.log_every=1", "train.checkpoint_every=3",
         )


def mean_spread(values: Sequence[float]) -> str:
    """'mean +- half range' in percent (mIoU over seeds)."""
    mean, half = spread(values)
    return f"{100 * mean:5.1f} +- {100 * half:3.1f}"


def random_budgets(source, active, out: Path) -> Path:
    """Budget files of the random arm: the same initial budget as the loop, then rounds of random picks."""
    from pcseg.active.select import select_points, write_round
    from pcseg.weak.budget import read_budget, sample_budget, write_budget

    path = out / "round_0.pt"
    if not path.exists():
        write_budget(sample_budget(source, active.initial, active.seed), path)
    for r in range(active.rounds):
        following = out / f"round_{r + 1}.pt"
        if not following.exists():
            previous = read_budget(path)
            picks = select_points(source, active, previous, ratio=active.round_ratio, progress=False).picks
            write_round(previous, picks, following)
        path = following
    return path


def copy_first_round(hpal: Path, loop: Path) -> None:
    """Start the warm-started random loop from HPAL's finished round 0: the same budget file and training."""
    if (loop / "round_0").exists() or not (hpal / "round_0" / "last.pt").is_file():
        return
    (loop / "budgets").mkdir(parents=True, exist_ok=True)
    shutil.copy2(hpal / "budgets" / "round_0.pt", loop / "budgets" / "round_0.pt")
    partial = loop / "round_0.partial"  # an interrupted copy never passes for a finished round
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(hpal / "round_0", partial)
    partial.rename(loop / "round_0")


def held_out_miou(checkpoint: Path, scenes, count: int) -> float:
    """mIoU of a finished run on the `count` held-out test rooms `scenes` (their scene source); the metrics are kept
    next to the checkpoint (`test_<count>.json`) and reused while the checkpoint's contents are unchanged."""
    from pcseg.engine.build import evaluate_checkpoint, load_checkpoint_config
    from pcseg.engine.checkpoint import file_sha256

    cache = checkpoint.parent / f"test_{count}.json"
    digest = file_sha256(checkpoint)
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("checkpoint_sha256") == digest:
            return float(saved["miou"])
    cfg, state = load_checkpoint_config(checkpoint, None, (f"data.num_val_scenes={count}",))
    metrics = evaluate_checkpoint(cfg, state, str(checkpoint), split="test", scenes=scenes)
    write_text_atomic(cache, json.dumps({"checkpoint_sha256": digest, **metrics}, indent=2))
    return float(metrics["miou"])


def train_once(cfg, sources) -> float:
    """mIoU on the validation split of one training run (resumes a finished or interrupted run)."""
    from pcseg.active.loop import train_run

    return float(train_run(cfg, sources)[1]["miou"])


def run(args: argparse.Namespace) -> Dict[str, object]:
    from pcseg.active.config import load_active_config, split_overrides
    from pcseg.active.loop import run_active_loop
    from pcseg.active.select import scene_point_counts
    from pcseg.engine.build import build_source
    from pcseg.engine.config import load_config

    out = Path(args.out)
    final = args.final_ratio
    engine_overrides, _ = split_overrides(args.overrides)
    active_overrides = tuple(o for o in args.overrides if o not in engine_overrides)
    # method.* overrides set the teacher training of the HPAL and random+MT arms; CE and full stay plain CE
    teacher = HPAL + tuple(o for o in engine_overrides if o.strip().startswith("method."))
    engine_overrides = [o for o in engine_overrides if not o.strip().startswith("method.")]
    base = BENCH + (QUICK if args.quick else ()) + tuple(engine_overrides) + (f"train.progress={args.progress}",)
    active_schedule = (f"active.initial=ratio:{final / 5:g}", f"active.round_ratio={final * 4 / 5 / args.rounds:g}",
                       f"active.rounds={args.rounds}") + active_overrides
    cfg, _ = load_active_config(None, base + teacher)
    sources = {split: build_source(cfg, split) for split in (cfg.data.train_split, cfg.data.val_split)}
    train_source = sources[cfg.data.train_split]
    total = sum(scene_point_counts(train_source).values())
    print(f"{len(train_source)} training rooms, {total:,} points; final budget {100 * final:g}% "
          f"= {round(final * total)} points in 1 + {args.rounds} rounds; seeds {args.seeds}", flush=True)
    long_steps = (args.rounds + 1) * cfg.train.steps  # a warm-started arm's steps by its last round
    test_scenes = args.test_scenes if args.test_scenes is not None else 1 if args.quick else 64
    # the "test" split of the generated rooms: disjoint seeds, never used to choose a setting
    test_source = (build_source(load_config(None, base + (f"data.num_val_scenes={test_scenes}",)), "test")
                   if test_scenes else None)
    tic = time.perf_counter()
    rows: Dict[str, Dict[int, object]] = {"hpal": {}, "random": {}, "ce": {}, "full": {}, "labeled": {},
                                          "random_rounds": {}, "full_long": {}, "test": {}}
    for seed in args.seeds:
        seeded = base + (f"train.seed={seed}",)
        active_over = active_schedule + (f"active.seed={seed}",)
        hpal_cfg, active = load_active_config(None, seeded + teacher + ("active.strategy=hierarchical",)
                                              + active_over)
        print(f"\n[seed {seed}] HPAL: hierarchical selection + mean teacher", flush=True)
        loop = run_active_loop(hpal_cfg, active, out / f"seed{seed}" / "hpal", progress=args.progress,
                               sources=sources, report=lambda line: print(line, flush=True))
        # {row: folder of its training at the final budget}; a loop's last round is `round_<r>/` (loop.round_config)
        final_runs = {"hpal": out / f"seed{seed}" / "hpal" / f"round_{len(loop) - 1}"}
        rows["hpal"][seed] = [r.miou for r in loop]
        rows["labeled"][seed] = [r.labeled_points for r in loop]
        random_cfg, random_active = load_active_config(None, seeded + teacher + active_over
                                                       + ("active.strategy=random",))
        budget = random_budgets(train_source, random_active, out / f"seed{seed}" / "random_budgets")
        arms = [("ce", ("method.name=supervised",))]
        if active.warm_start:  # random picks in the same warm-started rounds: only the selection differs from HPAL
            print(f"\n[seed {seed}] random selection + mean teacher, the same warm-started rounds", flush=True)
            copy_first_round(out / f"seed{seed}" / "hpal", out / f"seed{seed}" / "random_loop")
            random_loop = run_active_loop(random_cfg, random_active, out / f"seed{seed}" / "random_loop",
                                          progress=args.progress, sources=sources,
                                          report=lambda line: print(line, flush=True))
            rows["random_rounds"][seed] = [r.miou for r in random_loop]
            rows["random"][seed] = random_loop[-1].miou
            final_runs["random"] = out / f"seed{seed}" / "random_loop" / f"round_{len(random_loop) - 1}"
        else:
            arms.insert(0, ("random", teacher))
        for name, method in arms:
            run_cfg = load_config(None, seeded + method + (f"data.budget={budget}",
                                                           f"train.out_dir={out / f'seed{seed}' / name}"))
            rows[name][seed] = train_once(run_cfg, sources)
            final_runs[name] = Path(run_cfg.train.out_dir)
            print(f"[seed {seed}] {name:>6} at the final budget: mIoU {100 * rows[name][seed]:.1f}", flush=True)
        full_cfg = load_config(None, seeded + ("method.name=supervised",
                                                f"train.out_dir={out / f'seed{seed}' / 'full'}"))
        rows["full"][seed] = train_once(full_cfg, sources)
        final_runs["full"] = Path(full_cfg.train.out_dir)
        print(f"[seed {seed}]   full supervision: mIoU {100 * rows['full'][seed]:.1f}  "
              f"({time.perf_counter() - tic:.0f}s so far)", flush=True)
        if active.warm_start:  # full supervision at the warm-started arms' compute
            long_cfg = load_config(None, seeded + ("method.name=supervised", f"train.steps={long_steps}",
                                                    f"train.out_dir={out / f'seed{seed}' / 'full_long'}"))
            rows["full_long"][seed] = train_once(long_cfg, sources)
            final_runs["full_long"] = Path(long_cfg.train.out_dir)
            print(f"[seed {seed}]   full supervision, {long_steps} steps: mIoU "
                  f"{100 * rows['full_long'][seed]:.1f}  ({time.perf_counter() - tic:.0f}s so far)", flush=True)
        if test_source is not None:
            rows["test"][seed] = {name: held_out_miou(run / "last.pt", test_source, test_scenes)
                                  for name, run in final_runs.items()}
            print(f"[seed {seed}] on {test_scenes} test rooms: "
                  + ", ".join(f"{name} {100 * v:.1f}" for name, v in rows["test"][seed].items()), flush=True)
    seconds = time.perf_counter() - tic
    report = format_report(rows, args.seeds, total, seconds, long_steps, test_scenes)
    print("\n" + report)
    result = {"seeds": list(args.seeds), "total_points": total, "seconds": seconds, "final_ratio": final,
              "rounds": args.rounds, "test_scenes": test_scenes,
              "overrides": list(base) + list(teacher) + list(active_overrides),
              "miou": {k: {str(s): v for s, v in d.items()} for k, d in rows.items()}, "report": report}
    write_text_atomic(out / "results.json", json.dumps(result, indent=2))
    return result


def format_report(rows, seeds: Sequence[int], total: int, seconds: float, long_steps: int,
                  test_scenes: int = 0) -> str:
    """Per-round HPAL table, then the final comparison at equal budgets with the ratio to full supervision (and to
    full supervision trained `long_steps`, when the warm-started rounds ran it), on the validation rooms and, when
    `rows['test']` holds them, on the `test_scenes` held-out test rooms."""
    random_rounds = bool(rows["random_rounds"])  # the random arm ran the same rounds (active.warm_start)
    lines = [f"per-round table (mIoU %, mean +- half range over seeds {list(seeds)})",
             f"{'round':>5} {'labeled points':>15} {'fraction':>9} {'HPAL mIoU':>14}"
             + (f" {'random mIoU':>14}" if random_rounds else "")]
    rounds = len(rows["hpal"][seeds[0]])
    for r in range(rounds):
        labeled = [rows["labeled"][s][r] for s in seeds]
        lines.append(f"{r:>5} {int(np.mean(labeled)):>15,} {100 * np.mean(labeled) / total:>8.3f}% "
                     f"{mean_spread([rows['hpal'][s][r] for s in seeds]):>14}"
                     + (f" {mean_spread([rows['random_rounds'][s][r] for s in seeds]):>14}" if random_rounds else ""))
    final = {name: [rows[name][s][-1] if name == "hpal" else rows[name][s] for s in seeds]
             for name in ("hpal", "random", "ce", "full") + (("full_long",) if rows["full_long"] else ())}
    names = {"hpal": "HPAL (selection + teacher)",
             "random": "random selection + teacher" + (", same rounds" if random_rounds else ""),
             "ce": "CE, same random budget", "full": "full supervision",
             "full_long": f"full supervision, {long_steps} steps"}
    budget = rows["labeled"][seeds[0]][-1]
    lines += final_comparison(final, names, f"at the final budget ({budget:,} labeled points), validation rooms:",
                              long_steps)
    if rows["test"]:
        test = {name: [rows["test"][s][name] for s in seeds] for name in final}
        lines += final_comparison(test, names, f"the same final models on {test_scenes} held-out test room(s):",
                                  long_steps)
    lines.append(f"total time {seconds / 60:.1f} min")
    return "\n".join(lines)


def final_comparison(final: Dict[str, Sequence[float]], names: Dict[str, str], title: str,
                     long_steps: int) -> list:
    """Lines of the final table: each row's mIoU over seeds and ratio to full supervision, HPAL's gains over random
    selection and CE against the seed spread, and HPAL's ratio to full supervision (and to the long run)."""
    full = np.mean(final["full"])
    width = max(map(len, names.values()))
    lines = ["", title, f"{'':<{width}} {'mIoU':>14} {'of full':>8}  per seed"]
    for name, values in final.items():
        per_seed = " ".join(f"{100 * v:.1f}" for v in values)
        lines.append(f"{names[name]:<{width}} {mean_spread(values):>14} {100 * np.mean(values) / full:>7.1f}%  "
                     f"{per_seed}")
    lines += [compare(final["hpal"], final[other], f"HPAL - {other}") for other in ("random", "ce")]
    lines.append(f"HPAL reaches {100 * np.mean(final['hpal']) / full:.1f}% of full supervision (target 95%)")
    if "full_long" in final:
        lines.append(f"HPAL reaches {100 * np.mean(final['hpal']) / np.mean(final['full_long']):.1f}% of full "
                     f"supervision trained as many steps as its rounds ({long_steps})")
    return lines


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training and selection seeds")
    parser.add_argument("--rounds", type=int, default=4,
                        help="selection rounds after the initial fifth (4: the authors' rounds of 0.02%%)")
    parser.add_argument("--final-ratio", type=float, default=0.001, help="final budget as a fraction of points")
    parser.add_argument("--out", default="runs/bench_active_learning", help="output folder")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--test-scenes", type=int, default=None,
                        help="held-out test rooms on which the final models are scored again (default 64, --quick 1; "
                             "0: none)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides; active.key=value ones set the HPAL selection, method.key=value "
                             "ones the teacher training of the HPAL and random+MT arms")
    args = parser.parse_args(argv)
    if args.test_scenes is not None and args.test_scenes < 0:
        parser.error(f"--test-scenes: expected 0 or more rooms, got {args.test_scenes}")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
