"""Typed run configuration: dataclass defaults, YAML files that override them, `a.b=c` command-line overrides.

A YAML file holds the sections below as mappings and may name one base file (`_base_: base.yaml`, relative to
itself) whose values it overrides. The `method` section is typed by the chosen method: `method.name` picks the
method's own config class (`METHODS[name].Config`), so a key that only another method knows is an error too.
Every unknown key is an error that lists the valid keys of its section.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import (Any, Collection, Dict, List, Mapping, Optional, Sequence, Tuple, Union, get_args, get_origin,
                    get_type_hints)

import yaml

from pcseg.atomic import write_text_atomic
from pcseg.methods.base import MethodConfig


class ConfigError(ValueError):
    """A config file or override that cannot be applied (unknown key, wrong type, bad value)."""


def _choice(default: str, choices: Sequence[str], help: str) -> Any:
    return field(default=default, metadata={"choices": tuple(choices), "help": help})


def _opt(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    dataset: str = _opt("synthetic_indoor", "dataset name, a key of pcseg.data.DATASETS")
    root: str = _opt("", "directory of the preprocessed dataset (`pcseg preprocess`); unused by synthetic data")
    train_split: str = _opt("train", "split used for training")
    val_split: str = _opt("val", "split used for evaluation")
    voxel_size: float = _opt(0.05, "voxel edge length in metres")
    features: Tuple[str, ...] = _opt((), "per-point input features (color, normal, strength, coord); () = dataset's")
    budget: str = _opt("", "label budget: a sampler spec (points:N, ratio:r, scenes:f) or a budget file; '' = all")
    budget_seed: int = _opt(0, "seed of the budget sampler")
    batch_size: int = _opt(4, "scenes per batch and process")
    num_workers: int = _opt(0, "data-loader worker processes")
    max_points: int = _opt(0, "crop training scenes to at most this many points (0 = no crop)")
    augment: bool = _opt(True, "random rotation, scaling, flips, jitter and colour jitter while training")
    elastic: bool = _opt(False, "add elastic distortion to the training augmentation")
    num_train_scenes: int = _opt(48, "synthetic data: scenes in the training split")
    num_val_scenes: int = _opt(12, "synthetic data: held-out scenes in the validation split")
    points_per_scene: int = _opt(40000, "synthetic data: points per generated scene")
    scene_seed: int = _opt(0, "synthetic data: seed of the generator (the splits use disjoint seeds)")


@dataclass
class ModelConfig:
    name: str = _opt("spunet18", "backbone name, a key of pcseg.models.MODELS")
    base_channels: int = _opt(32, "channels of the stem")
    channels: Tuple[int, ...] = _opt((), "channels per encoder/decoder stage; () = the preset's")
    layers: Tuple[int, ...] = _opt((), "residual blocks per stage; () = the preset's")
    backend: str = _choice("auto", ("auto", "native", "spconv"),
                           "sparse convolution backend; auto = spconv on CUDA when installed, else native")


@dataclass
class OptimConfig:
    name: str = _choice("sgd", ("sgd", "adamw"), "optimizer")
    lr: float = _opt(0.01, "peak learning rate")
    weight_decay: float = _opt(1e-4, "weight decay")
    momentum: float = _opt(0.9, "SGD momentum")
    nesterov: bool = _opt(True, "SGD Nesterov momentum")
    betas: Tuple[float, float] = _opt((0.9, 0.999), "AdamW betas")
    grad_clip: float = _opt(0.0, "clip the global gradient norm to this value (0 = off)")


@dataclass
class ScheduleConfig:
    name: str = _choice("poly", ("poly", "cosine", "onecycle"), "learning-rate schedule over train.steps")
    power: float = _opt(0.9, "poly: lr = peak * (1 - t)^power")
    warmup_steps: int = _opt(0, "poly, cosine: linear warm-up steps from 0 to the peak")
    min_lr_ratio: float = _opt(0.0, "cosine: final lr as a fraction of the peak")
    pct_start: float = _opt(0.05, "onecycle: fraction of steps spent rising to the peak")
    div_factor: float = _opt(10.0, "onecycle: initial lr = peak / div_factor")
    final_div_factor: float = _opt(1e3, "onecycle: final lr = initial lr / final_div_factor")


@dataclass
class TrainConfig:
    steps: int = _opt(1000, "optimizer steps")
    seed: int = _opt(0, "seed of python, numpy and torch (data order, augmentation, initial weights)")
    out_dir: str = _opt("runs/default", "directory of checkpoints, logs and the resolved config")
    device: str = _choice("auto", ("auto", "cpu", "cuda"), "training device; auto = cuda when available")
    amp: bool = _opt(True, "mixed precision (float16 autocast + grad scaling); used on CUDA only")
    ema_decay: float = _opt(0.0, "keep an exponential moving average of the weights with this decay (0 = off)")
    log_every: int = _opt(10, "steps between log rows (CSV, TensorBoard)")
    checkpoint_every: int = _opt(200, "steps between checkpoints (the last step always writes one)")
    eval_every: int = _opt(0, "steps between validation runs (0 = only after the last step)")
    progress: bool = _opt(True, "show progress bars")
    threads: int = _opt(0, "torch CPU threads (0 = torch's default)")
    init_from: str = _opt("", "checkpoint whose model weights start this training (a new run, not a resume: the "
                              "optimizer, schedule, EMA and the method's step counters start fresh); '' = random")


@dataclass
class EvalConfig:
    batch_size: int = _opt(1, "scenes per evaluation batch")
    tta_rotations: int = _opt(1, "test-time augmentation: average probabilities over this many z rotations")
    save_predictions: bool = _opt(False, "write the predictions of every evaluation to "
                                         "<train.out_dir>/predictions/<scene>.npy (one label per point)")
    use_ema: bool = _opt(False, "evaluate the EMA weights instead of the trained ones (needs train.ema_decay > 0)")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (tuples as lists), the form written to YAML and checkpoints."""
        return _to_plain(dataclasses.asdict(self))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def method_config_class(name: str) -> type:
    """The config dataclass of method `name` (a subclass of MethodConfig)."""
    from pcseg.methods import METHODS

    if name not in METHODS:
        raise ConfigError(f"method.name: unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name].Config


# ----------------------------------------------------------------------------------------------------------------
# conversion of raw values to the annotated field types


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value or command-line string to `annotation` (int, float, bool, str, tuples, Optional)."""
    origin = get_origin(annotation)
    if origin is Union:
        args = [a for a in get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            return None
        return _convert(value, args[0], where)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = _parse_literal(value)
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
        item_types = [args[0]] * len(value) if (origin is list or args[-1] is Ellipsis) else list(args)
        items = [_convert(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, item_types))]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return "" if value is None else str(value)
    raise ConfigError(f"{where}: unsupported field type {annotation!r}")


def _parse_literal(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# ----------------------------------------------------------------------------------------------------------------
# building dataclasses from nested mappings


def _unknown_key(key: str, section: str, valid: Sequence[str], source: str) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    place = f"{section}.{key}" if section else key
    return ConfigError(f"{source}: unknown key {place!r}{hint}; valid keys{' of ' + section if section else ''}: "
                       f"{', '.join(valid)}")


def _fill(obj: Any, values: Mapping[str, Any], section: str, source: str) -> None:
    """Set the fields of dataclass `obj` from `values`, converting types; unknown keys raise ConfigError."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: section {section!r} must be a mapping, got {values!r}")
    hints = get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in values.items():
        if key not in names:
            raise _unknown_key(str(key), section, names, source)
        setattr(obj, key, _convert(value, hints[key], f"{source}: {section}.{key}"))


def _check_choices(cfg: Config) -> None:
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        for f in dataclasses.fields(sub):
            choices = f.metadata.get("choices")
            if choices and getattr(sub, f.name) not in choices:
                raise ConfigError(f"{section.name}.{f.name}: {getattr(sub, f.name)!r} is not one of "
                                  f"{', '.join(choices)}")


def _check_values(cfg: Config) -> None:
    positive = {
        "data.voxel_size": cfg.data.voxel_size, "data.batch_size": cfg.data.batch_size,
        "optim.lr": cfg.optim.lr, "train.steps": cfg.train.steps, "train.log_every": cfg.train.log_every,
        "train.checkpoint_every": cfg.train.checkpoint_every, "eval.batch_size": cfg.eval.batch_size,
        "eval.tta_rotations": cfg.eval.tta_rotations,
    }
    for name, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")
    nonneg = {"data.num_workers": cfg.data.num_workers, "data.max_points": cfg.data.max_points,
              "optim.weight_decay": cfg.optim.weight_decay, "optim.grad_clip": cfg.optim.grad_clip,
              "train.eval_every": cfg.train.eval_every, "train.threads": cfg.train.threads,
              "schedule.warmup_steps": cfg.schedule.warmup_steps}
    for name, value in nonneg.items():
        if value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value!r}")
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {cfg.train.ema_decay!r}")
    if cfg.eval.use_ema and cfg.train.ema_decay == 0.0:
        raise ConfigError("eval.use_ema needs train.ema_decay > 0")


# Sections of a config file that other commands read: `active` (pcseg select and pcseg active-loop, through
# pcseg.active.config). load_config skips them, so one file also serves `pcseg train` and `pcseg eval`.
OTHER_SECTIONS = frozenset({"active"})


def build_config(layers: Sequence[Tuple[str, Mapping[str, Any]]]) -> Config:
    """Apply nested mappings in order over the defaults. `layers` = [(source name for messages, mapping), ...]."""
    cfg = Config()
    section_names = [f.name for f in dataclasses.fields(cfg)]
    method_name = cfg.method.name
    for source, values in layers:
        method = values.get("method") if isinstance(values, Mapping) else None
        if isinstance(method, Mapping) and "name" in method:
            method_name = _convert(method["name"], str, f"{source}: method.name")
    cfg.method = method_config_class(method_name)()
    for source, values in layers:
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
        for key, sub in values.items():
            if key in OTHER_SECTIONS:
                raise ConfigError(f"{source}: {key}.* settings are read by `pcseg select` and `pcseg active-loop`, "
                                  "not by this command")
            if key not in section_names:
                raise _unknown_key(str(key), "", section_names, source)
            _fill(getattr(cfg, key), sub or {}, key, source)
    _check_choices(cfg)
    _check_values(cfg)
    return cfg


def read_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a config file and its base (`_base_`, at most one level) merged into one nested mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = _load_mapping(path)
    base = data.pop("_base_", None)
    if base is None:
        return data
    base_path = (path.parent / str(base)).resolve()
    if not base_path.is_file():
        raise ConfigError(f"{path}: base file {base!r} not found (looked at {base_path})")
    merged = _load_mapping(base_path)
    if "_base_" in merged:
        raise ConfigError(f"{base_path}: a base file cannot name another base (at most one level)")
    return _merge(merged, data)


def _load_mapping(path: Path) -> Dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _merge(base: Dict[str, Any], over: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """['optim.lr=0.1', 'model.channels=[32,64]'] -> {'optim': {'lr': '0.1'}, 'model': {'channels': '[32,64]'}}.

    Values stay strings; they are converted to each field's type when applied.
    """
    nested: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise ConfigError(f"override {item!r}: expected section.key=value, e.g. optim.lr=0.02")
        nested.setdefault(parts[0], {})[parts[1]] = value.strip()
    return nested


def load_config(path: Union[str, Path, None] = None, overrides: Sequence[str] = (),
                base: Optional[Mapping[str, Any]] = None) -> Config:
    """Defaults <- `base` mapping (e.g. a checkpoint's config) <- YAML file `path` (less its OTHER_SECTIONS) <-
    `a.b=c` overrides."""
    layers: List[Tuple[str, Mapping[str, Any]]] = []
    if base is not None:
        layers.append(("checkpoint config", base))
    if path is not None:
        layers.append((str(path), {k: v for k, v in read_yaml(path).items() if k not in OTHER_SECTIONS}))
    if overrides:
        layers.append(("command line", parse_overrides(overrides)))
    return build_config(layers)


# Settings of where and how a run runs and logs, not of what it computes (the two sparse-convolution backends compute
# the same convolution with one set of weights).
RUN_SETTINGS = frozenset({
    "data.root", "data.num_workers", "model.backend", "train.out_dir", "train.device", "train.log_every",
    "train.checkpoint_every", "train.eval_every", "train.progress", "train.threads"})
# Settings that may change when a run resumes: those, evaluation, and a longer train.steps. The rest decides what is
# trained, so a resume with other values would silently mix two runs.
RESUME_FREE = RUN_SETTINGS | frozenset({
    "data.val_split", "data.num_val_scenes", "train.steps", "eval.batch_size", "eval.tta_rotations",
    "eval.save_predictions", "eval.use_ema"})


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _to_plain(value)
    return flat


def config_differences(before: Mapping[str, Any], after: Mapping[str, Any], ignore: Collection[str] = (),
                       defaults: Optional[Mapping[str, Any]] = None) -> List[str]:
    """'key: before -> after' for every setting (dotted key) that differs between two `Config.to_dict()` mappings;
    a key only one of them has reads as '(unset)' in the other. With `defaults` (a Config.to_dict()), a key that
    `before` lacks takes its default value: a setting added since `before` was written, whose default keeps the
    old behaviour, is no difference."""
    a, b = {**(_flatten(defaults) if defaults else {}), **_flatten(before)}, _flatten(after)
    return [f"{key}: {a.get(key, '(unset)')} -> {b.get(key, '(unset)')}"
            for key in sorted(set(a) | set(b)) if key not in ignore and a.get(key) != b.get(key)]


def save_config(cfg: Config, path: Union[str, Path]) -> None:
    """Write the fully resolved config as YAML (loadable with `load_config`), atomically."""
    write_text_atomic(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def format_config(cfg: Config) -> str:
    """The resolved config as YAML with each field's help as a trailing comment (`pcseg config`)."""
    lines = []
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        lines.append(f"{section.name}:")
        for f in dataclasses.fields(sub):
            value = yaml.safe_dump(_to_plain(getattr(sub, f.name)), default_flow_style=True).strip()
            if value.endswith("..."):  # PyYAML's end-of-document marker after a plain scalar
                value = value[:-3].strip()
            comment = f.metadata.get("help", "")
            lines.append(f"  {f.name}: {value}" + (f"  # {comment}" if comment else ""))
    return "\n".join(lines) + "\n"
