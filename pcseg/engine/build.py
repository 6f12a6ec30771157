"""From a Config to datasets, a method, a trainer and an evaluator; the train and eval entry points."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from pcseg.engine import checkpoint as ckpt
from pcseg.engine.config import Config, ConfigError, load_config
from pcseg.engine.evaluator import Evaluator
from pcseg.engine.trainer import Trainer, resolve_device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (initial weights and anything drawing from the global generators)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_source(cfg: Config, split: str):
    """The scene source of `split`: generated for synthetic datasets, read from `data.root` otherwise."""
    from pcseg.data import DATASETS, build_source as data_source

    name = cfg.data.dataset
    if name not in DATASETS:
        raise ConfigError(f"data.dataset: unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    if name.startswith("synthetic"):
        count = cfg.data.num_train_scenes if split == cfg.data.train_split else cfg.data.num_val_scenes
        # the street scans are sized by their sensor (beams x azimuth steps), not by a point count
        size = {"points_per_scene": cfg.data.points_per_scene} if name == "synthetic_indoor" else {}
        return data_source(name, None, split, num_scenes=count, seed=cfg.data.scene_seed, **size)
    if not cfg.data.root:
        raise ConfigError(f"data.root: {name} needs the folder of the preprocessed dataset (pcseg preprocess)")
    if not Path(cfg.data.root).is_dir():
        raise FileNotFoundError(f"data.root: dataset folder not found: {cfg.data.root}")
    return data_source(name, cfg.data.root, split)


def build_dataset(cfg: Config, split: str, train: bool, source=None):
    """PointDataset of `split`; the training one gets augmentation, the crop and the label budget."""
    from pcseg.data import PointDataset, default_transforms
    from pcseg.data.dataset import dataset_defaults

    budget = cfg.data.budget or None
    if train and budget is not None and ":" not in budget and not Path(budget).is_file():
        raise FileNotFoundError(f"data.budget: budget file not found: {budget}")
    source = build_source(cfg, split) if source is None else source
    defaults = dataset_defaults(source, cfg.data.dataset)
    transforms = None
    if train and cfg.data.augment:
        transforms = default_transforms(defaults.kind, cfg.data.max_points or None, cfg.data.elastic)
    elif train and cfg.data.max_points:
        from pcseg.data.transforms import CropToBudget

        transforms = CropToBudget(cfg.data.max_points)
    return PointDataset(source, voxel_size=cfg.data.voxel_size, transforms=transforms,
                        budget=budget if train else None, budget_seed=cfg.data.budget_seed,
                        features=cfg.data.features or defaults.features, seed=cfg.train.seed)


def build_method(cfg: Config, num_classes: int, in_channels: int) -> nn.Module:
    """Backbone `MODELS[model.name]` inside method `METHODS[method.name]`."""
    from pcseg.methods import METHODS
    from pcseg.models import MODELS

    if cfg.model.name not in MODELS:
        raise ConfigError(f"model.name: unknown model {cfg.model.name!r}; valid: {', '.join(sorted(MODELS))}")
    options: Dict[str, Any] = {"base_channels": cfg.model.base_channels, "backend": cfg.model.backend}
    if cfg.model.channels:
        options["channels"] = tuple(cfg.model.channels)
    if cfg.model.layers:
        options["layers"] = tuple(cfg.model.layers)
    backbone = MODELS[cfg.model.name](in_channels, **options)
    return METHODS[cfg.method.name](backbone, num_classes, cfg.method)


def _meta(dataset) -> Dict[str, Any]:
    return {"class_names": list(dataset.class_names), "num_classes": dataset.num_classes,
            "in_channels": dataset.in_channels}


def build_trainer(cfg: Config, sources: Optional[Dict[str, Any]] = None) -> Trainer:
    """Seeded datasets, method and Trainer (with an evaluator of `data.val_split` when it has scenes).

    sources  optional {split: scene source} to reuse generated or loaded scenes across runs (the demo)
    """
    sources = sources or {}
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    train_set = build_dataset(cfg, cfg.data.train_split, True, sources.get(cfg.data.train_split))
    val_set = build_dataset(cfg, cfg.data.val_split, False, sources.get(cfg.data.val_split))
    method = build_method(cfg, train_set.num_classes, train_set.in_channels)
    device = resolve_device(cfg.train.device)
    evaluator = Evaluator(val_set, device, cfg.eval.batch_size, cfg.eval.tta_rotations,
                          progress=cfg.train.progress) if len(val_set) else None
    from pcseg.data import collate

    return Trainer(cfg, method, train_set, collate, evaluate=evaluator, extra_state=_meta(train_set))


def load_checkpoint_config(path: Union[str, Path], config_path: Optional[str] = None,
                           overrides: Tuple[str, ...] = ()) -> Tuple[Config, Dict[str, Any]]:
    """(config, checkpoint): the checkpoint's own config <- optional YAML file <- overrides."""
    state = ckpt.load(path)
    if "config" not in state:
        raise ckpt.CheckpointError(f"{path} has no stored config")
    return load_config(config_path, overrides, base=state["config"]), state


def evaluate_checkpoint(cfg: Config, state: Dict[str, Any], source: str, save_dir: Optional[Path] = None,
                        split: Optional[str] = None, scenes=None) -> Dict[str, Any]:
    """Metrics of a checkpoint's model (or its EMA weights with eval.use_ema) on `split` (default data.val_split);
    `scenes` is that split's scene source when already built (generated rooms are made once for many checkpoints)."""
    dataset = build_dataset(cfg, split or cfg.data.val_split, False, source=scenes)
    meta = state.get("meta", {})
    if meta and meta.get("num_classes") != dataset.num_classes:
        raise ckpt.CheckpointError(f"{source} was trained for {meta.get('num_classes')} classes, the dataset "
                                   f"{cfg.data.dataset} has {dataset.num_classes}")
    method = build_method(cfg, dataset.num_classes, dataset.in_channels)
    weights = state["model"]
    if cfg.eval.use_ema:
        if state.get("ema") is None:
            raise ckpt.CheckpointError(f"{source} has no EMA weights (it was trained with train.ema_decay=0)")
        weights = state["ema"]["module"]
    ckpt.load_model_state(method, weights, source=source)
    device = resolve_device(cfg.train.device)
    evaluator = Evaluator(dataset, device, cfg.eval.batch_size, cfg.eval.tta_rotations, progress=cfg.train.progress)
    return evaluator(method.to(device), save_dir=save_dir)
