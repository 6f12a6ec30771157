"""The `pcseg visualize` and `pcseg export` subcommands.

visualize: open an Open3D window on a scene with switchable layers, or render it to PNG with --save.
export:    write the scene as a coloured binary PLY with label/pred/uncertainty vertex properties.
A scene comes from a file (a PLY written by `pcseg export` or any point PLY; an .npz with arrays coord (N, 3)
and optionally color (N, 3), label, pred (N,), uncertainty (N,), scene_id, dataset) or from a dataset
(--data NAME --split S --scene-id ID); predictions from `pcseg eval --save-predictions DIR` (DIR/<scene_id>.npy)
come in with --pred.

Wire into a CLI with `add_visualize_parser(subparsers)` and `add_export_parser(subparsers)`; each parser's
`func` default (`run_visualize`, `run_export`) returns the exit code: 0, or 2 after printing what is wrong.
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


def load_dataset_scene(name: str, root: Optional[str], split: str, scene_id: Optional[str]):
    """Scene `scene_id` of a dataset source (`pcseg.data.build_source`) -> (arrays, meta) like load_scene_file,
    with meta "classes" from the source's class names."""
    from pcseg.data.dataset import build_source

    if scene_id is None:
        raise ValueError(f"--data {name}: give --scene-id (the scene to show)")
    source = build_source(name, root=root, split=split)
    ids = list(source.scene_ids)
    if scene_id not in ids:
        raise ValueError(f"--data {name} split {split!r} has no scene {scene_id!r} ({len(ids)} scenes, e.g. "
                         f"{', '.join(ids[:3])})")
    scene = source[ids.index(scene_id)]
    arrays = {"coord": scene.coord, "color": scene.color, "label": scene.label}
    meta = {"scene_id": scene_id, "dataset": name, "classes": ",".join(source.class_names)}
    return arrays, meta


def _per_point(path: Path, n: int, what: str, integer: bool) -> np.ndarray:
    """A (N,) .npy of per-point values, checked against the scene's N points."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--{what} {path} does not exist")
    try:
        values = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"--{what} {path}: not a .npy array ({exc})") from None
    if not isinstance(values, np.ndarray):  # an .npz (or a torch zip file) loads as an archive
        raise ValueError(f"--{what} {path}: expected a .npy array, got an archive")
    if values.shape != (n,):
        raise ValueError(f"--{what} {path}: expected shape ({n},), one value per point of the scene, "
                         f"got {values.shape}")
    if integer and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"--{what} {path}: expected integer class indices, got {values.dtype}")
    return values.astype(np.int64 if integer else np.float32)


def _budget_mask(path: Optional[str], scene_id: Optional[str], n: int, what: str) -> Optional[np.ndarray]:
    if path is None:
        return None
    from pcseg.weak.budget import check_indices, read_budget

    budget = read_budget(path)
    if scene_id is None:
        if len(budget) != 1:
            raise ValueError(f"--{what} {path}: the scene records no scene id; give --scene-id")
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


def load_layers(args: argparse.Namespace) -> Tuple[SceneLayers, Dict[str, str]]:
    """The scene named by the input arguments (see `_add_input_arguments`) -> (SceneLayers, meta)."""
    if (args.scene is None) == (args.data is None):
        raise ValueError("give either a scene file or --data NAME (with --split and --scene-id)")
    if args.scene is not None:
        arrays, meta = load_scene_file(args.scene)
    else:
        arrays, meta = load_dataset_scene(args.data, args.root, args.split, args.scene_id)
    n = len(arrays["coord"])
    if args.pred is not None:
        arrays["pred"] = _per_point(args.pred, n, "pred", integer=True)
    if args.uncertainty is not None:
        arrays["uncertainty"] = _per_point(args.uncertainty, n, "uncertainty", integer=False)
    if args.palette:
        meta["dataset"] = args.palette
    scene_id = args.scene_id or meta.get("scene_id")
    if scene_id:
        meta["scene_id"] = scene_id
    layers = SceneLayers(
        coord=arrays["coord"], palette=_palette(arrays, meta.get("dataset"), meta.get("classes")),
        color=arrays.get("color"), label=arrays.get("label"), pred=arrays.get("pred"),
        uncertainty=arrays.get("uncertainty"),
        labeled=_budget_mask(getattr(args, "budget", None), scene_id, n, "budget"),
        picked=_budget_mask(getattr(args, "picked", None), scene_id, n, "picked"),
    )
    return layers, meta


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


def _add_input_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", nargs="?", type=Path,
                   help="a .ply (from `pcseg export`, or any point PLY) or an .npz with coord, color, label, pred, "
                        "uncertainty arrays; or leave out and use --data")
    g = p.add_argument_group("scene from a dataset (instead of a file)")
    g.add_argument("--data", metavar="NAME", help="dataset name, e.g. synthetic_indoor, scannet, s3dis, semantickitti")
    g.add_argument("--root", help="dataset folder (none for the synthetic datasets)")
    g.add_argument("--split", default="val", help="split of --data (default: val)")
    p.add_argument("--scene-id", help="scene to read with --data and to look up in budget files "
                                      "(default: the id recorded in the scene file)")
    p.add_argument("--pred", type=Path, metavar="NPY",
                   help="predictions, (N,) int .npy, e.g. DIR/<scene_id>.npy from `pcseg eval --save-predictions DIR`")
    p.add_argument("--uncertainty", type=Path, metavar="NPY", help="per-point uncertainty, (N,) float .npy")
    p.add_argument("--palette", help="class colours: scannet, s3dis, semantickitti (default: from the dataset or the "
                                     "file, else generated)")


def add_visualize_parser(subparsers) -> argparse.ArgumentParser:
    """Add `visualize` to an argparse subparsers object; returns the new parser (func=run_visualize)."""
    p = subparsers.add_parser(
        "visualize",
        help="look at a scene: Open3D window with switchable layers, or a PNG with --save",
        description="Open an Open3D window on a scene (keys: SPACE/N next layer, B previous, 1-9 pick one, "
                    "L legend) or render GT | prediction | errors to a PNG without a display (--save).",
    )
    _add_input_arguments(p)
    p.add_argument("--budget", help="label budget file: highlight this scene's labeled points (layer 'labeled')")
    p.add_argument("--picked", help="budget-format file of active-learning picks (layer 'picked')")
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


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Add `export` to an argparse subparsers object; returns the new parser (func=run_export)."""
    p = subparsers.add_parser(
        "export",
        help="write a scene (+ predictions) as a coloured binary PLY",
        description="Write a binary PLY with x, y, z, red, green, blue and label / pred / uncertainty vertex "
                    "properties that opens in Open3D, MeshLab and CloudCompare; the colours show one layer.",
    )
    _add_input_arguments(p)
    p.add_argument("-o", "--out", type=Path, required=True, metavar="PLY", help="output file")
    p.add_argument("--color-by", choices=("color", "gt", "pred", "error", "uncertainty"),
                   help="layer shown by the PLY's colours (default: pred when there are predictions, else gt)")
    p.set_defaults(func=run_export)
    return p


def run_visualize(args: argparse.Namespace) -> int:
    """Run `pcseg visualize`; returns the exit code: 0, or 2 after printing what is wrong (a bad file or
    argument, Open3D missing (with install instructions), no display, no renderer)."""
    try:
        return _visualize(args)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        print(f"pcseg visualize: error: {exc}", file=sys.stderr)
        return 2


def _visualize(args: argparse.Namespace) -> int:
    layers, _ = load_layers(args)
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


def run_export(args: argparse.Namespace) -> int:
    """Run `pcseg export`; returns 0, or 2 after printing what is wrong."""
    from .ply import class_names_comment, export_ply

    try:
        layers, meta = load_layers(args)
        color_by = args.color_by or ("pred" if layers.pred is not None else "gt")
        if color_by not in layers.available():
            raise ValueError(f"--color-by {color_by}: this scene has only {', '.join(layers.available())}")
        rgb, _ = layers.colors(color_by)
        meta = {**meta, "rgb": color_by, **class_names_comment(layers.palette.class_names)}
        path = export_ply(args.out, layers.coord, rgb, label=layers.label, pred=layers.pred,
                          uncertainty=layers.uncertainty, meta=meta)
    except (ImportError, OSError, ValueError) as exc:
        print(f"pcseg export: error: {exc}", file=sys.stderr)
        return 2
    print(f"[pcseg] wrote {path} ({layers.num_points} points, colours: {color_by})")
    return 0


def main(argv=None) -> int:
    """`python -m pcseg.vis.commands {visualize,export} ...`: these two commands on their own."""
    parser = argparse.ArgumentParser(prog="pcseg")
    sub = parser.add_subparsers(dest="command", required=True)
    add_visualize_parser(sub)
    add_export_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
