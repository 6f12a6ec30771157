"""The `pcseg visualize` subcommand: open a window on a scene file, or render it to PNG with --save.

Wire it into a CLI with `add_visualize_parser(subparsers)`; the parser's `func` default is `run_visualize`, which
returns the exit code. Input files: a PLY written by `pcseg export` (or any point PLY) or an .npz with arrays
coord (N, 3) and optionally color (N, 3), label, pred (N,), uncertainty (N,), scene_id, dataset.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .layers import LAYERS, SceneLayers
from .palettes import get_palette, standard_palette_name
from .render import BACKENDS, VIEWS


def load_scene_file(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """A .ply or .npz scene file -> (arrays: coord, color?, label?, pred?, uncertainty?; meta: scene_id?,
    dataset?). A PLY's red/green/blue count as the scan colour only when its header says "pcseg rgb=color" or
    it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scene file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".ply":
        from .ply import read_ply

        arrays, meta = read_ply(path)
        rgb = arrays.pop("rgb", None)
        if rgb is not None and meta.get("rgb", "color") == "color":
            arrays["color"] = rgb
        return arrays, meta
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "coord" not in z:
                raise ValueError(f"{path}: an .npz scene needs a 'coord' array (has {sorted(z.files)})")
            arrays = {k: z[k] for k in ("coord", "color", "label", "pred", "uncertainty") if k in z}
            meta = {k: str(z[k]) for k in ("scene_id", "dataset") if k in z}
        return arrays, meta
    raise ValueError(f"{path}: expected a .ply or .npz scene file, got {suffix or 'no suffix'!r}")


def _budget_mask(path: Optional[str], scene_id: Optional[str], n: int, what: str) -> Optional[np.ndarray]:
    if path is None:
        return None
    from pcseg.weak.budget import check_indices, read_budget

    budget = read_budget(path)
    if scene_id is None:
        if len(budget) != 1:
            raise ValueError(f"--{what} {path}: the scene file records no scene id; give --scene-id")
        scene_id = next(iter(budget))
    if scene_id not in budget:
        raise ValueError(f"--{what} {path}: no entry for scene {scene_id!r} ({len(budget)} scenes in the file)")
    check_indices(budget, scene_id, n, path)
    mask = np.zeros(n, bool)
    mask[budget[scene_id].numpy()] = True
    return mask


def _palette(arrays: Dict[str, np.ndarray], dataset: Optional[str], classes: Optional[str]):
    """The dataset's standard palette, else a generated one for the recorded class names, else for the largest
    class in the labels and predictions."""
    names = tuple(classes.split(",")) if classes else None
    if standard_palette_name(dataset) or names:
        return get_palette(dataset, class_names=names)
    top = max([int(arrays[k].max()) for k in ("label", "pred") if k in arrays and arrays[k].size] + [0])
    return get_palette(None, top + 1)


def _size(text: str) -> Tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 480x360, got {text!r}") from None
    return w, h


def _names(choices):
    def parse(text: str) -> Tuple[str, ...]:
        names = tuple(t.strip() for t in text.split(",") if t.strip())
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: choose a comma-separated list from {', '.join(choices)}")
        return names
    return parse


def add_visualize_parser(subparsers) -> argparse.ArgumentParser:
    """Add `visualize` to an argparse subparsers object; returns the new parser (func=run_visualize)."""
    p = subparsers.add_parser(
        "visualize",
        help="look at a scene: Open3D window with switchable layers, or a PNG with --save",
        description="Open an Open3D window on a scene (keys: SPACE/N next layer, B previous, 1-9 pick one, "
                    "L legend) or render GT | prediction | errors to a PNG without a display (--save).",
    )
    p.add_argument("scene", type=Path, help="a .ply from `pcseg export` (or any point PLY), or an .npz with "
                                            "coord, color, label, pred, uncertainty arrays")
    p.add_argument("--dataset", help="palette: scannet, s3dis, semantickitti (default: recorded in the file; "
                                     "otherwise a generated palette)")
    p.add_argument("--budget", help="label budget file: highlight this scene's labeled points (layer 'labeled')")
    p.add_argument("--picked", help="budget-format file of active-learning picks (layer 'picked')")
    p.add_argument("--scene-id", help="scene to look up in --budget/--picked (default: recorded in the file)")
    p.add_argument("--layer", choices=LAYERS, help="first layer shown in the window")
    p.add_argument("--save", type=Path, metavar="PNG", help="render headless to this PNG instead of a window")
    p.add_argument("--views", type=_names(VIEWS), default=VIEWS, help="with --save: bev,perspective")
    p.add_argument("--panels", type=_names(LAYERS), help="with --save: layers side by side "
                                                         "(default: gt,pred,error where available)")
    p.add_argument("--panel-size", type=_size, default=(480, 360), help="with --save: WIDTHxHEIGHT per panel")
    p.add_argument("--backend", choices=("auto",) + BACKENDS, default="auto", help="with --save: renderer")
    p.add_argument("--point-size", type=float, help="point size in pixels")
    p.add_argument("--hide-above", type=float, help="hide points above this z (e.g. a ceiling)")
    p.add_argument("--hide-classes", type=lambda s: tuple(t for t in s.split(",") if t), default=(),
                   help="hide these classes (names or indices, by ground truth), e.g. ceiling")
    p.set_defaults(func=run_visualize)
    return p


def run_visualize(args: argparse.Namespace) -> int:
    """Run `pcseg visualize`; returns the exit code: 0, or 2 after printing what is wrong (a bad file or
    argument, Open3D missing (with install instructions), no display, no renderer)."""
    try:
        return _visualize(args)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        print(f"pcseg visualize: {exc}", file=sys.stderr)
        return 2


def _visualize(args: argparse.Namespace) -> int:
    arrays, meta = load_scene_file(args.scene)
    n = len(arrays["coord"])
    scene_id = args.scene_id or meta.get("scene_id")
    dataset = args.dataset or meta.get("dataset")
    palette = _palette(arrays, dataset, meta.get("classes"))
    layers = SceneLayers(
        coord=arrays["coord"], palette=palette, color=arrays.get("color"), label=arrays.get("label"),
        pred=arrays.get("pred"), uncertainty=arrays.get("uncertainty"),
        labeled=_budget_mask(args.budget, scene_id, n, "budget"),
        picked=_budget_mask(args.picked, scene_id, n, "picked"),
    )
    if args.save is not None:
        from .render import render_png

        panels = args.panels or tuple(p for p in ("gt", "pred", "error") if p in layers.available()) \
            or layers.available()[:1]
        result = render_png(
            args.save, layers, views=args.views, panels=panels, panel_size=args.panel_size,
            point_size=None if args.point_size is None else int(round(args.point_size)),
            hide_above=args.hide_above, hide_classes=args.hide_classes, backend=args.backend,
        )
        print(f"[pcseg] wrote {result.path} ({result.shape[1]}x{result.shape[0]}, {result.backend} renderer)")
        return 0
    from .window import visualize

    visualize(layers, layer=args.layer, point_size=args.point_size or 2.0, hide_above=args.hide_above,
              hide_classes=args.hide_classes)
    return 0


def main(argv=None) -> int:
    """`python -m pcseg.vis.commands SCENE ...`: the visualize command on its own."""
    parser = argparse.ArgumentParser(prog="pcseg")
    add_visualize_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
