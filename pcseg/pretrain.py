"""SLidR end to end on top of the engine, and its commands.

    pcseg pretrain-2d CONFIG   self-supervised image encoder (rotation prediction) on the cameras of data.train_split
    pcseg pretrain CONFIG      image-to-lidar distillation into the 3D backbone (method.name: slidr)
    pcseg finetune CONFIG --pretrained CKPT [--scan-every 100]
                               supervised fine-tuning (method.name: supervised) or linear probing
                               (method.name: linear_probe) from the distilled backbone, on every n-th scan

SLidR's downstream setting "1% of SemanticKITTI" takes every 100th training scan (`--scan-every 100`); point
budgets come from `data.budget` as for any training run.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from pcseg.engine import checkpoint as ckpt
from pcseg.engine.config import Config, ConfigError, load_config


def _require_method(cfg: Config, names: tuple, command: str) -> None:
    if cfg.method.name not in names:
        raise ConfigError(f"pcseg {command} needs method.name {' or '.join(names)}, the config has "
                          f"{cfg.method.name!r}")


def _setup(cfg: Config) -> None:
    from pcseg.engine.build import seed_everything

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)


# ----------------------------------------------------------------------------------------------- pretrain-2d
def camera_images(source, scale: float = 1.0) -> List[np.ndarray]:
    """Every camera image (H, W, 3) uint8 of every scene of `source`, resized by `scale` (cameras checked)."""
    from pcseg.methods.slidr import check_camera, scale_camera

    images = []
    for i in range(len(source)):
        scene = source[i]
        for camera in scene.extras.get("cameras") or []:
            check_camera(camera, f"scene {scene.scene_id!r}, camera {camera.name!r}")
            images.append(scale_camera(camera, scale).image)
    if not images:
        raise ValueError(f"none of the {len(source)} scenes of {type(source).__name__} has camera images "
                         "(extras['cameras']); use a dataset with image-lidar pairs")
    return images


def pretrain_image_encoder(cfg: Config, out_path: Path, source=None, progress: bool = True) -> Dict[str, Any]:
    """Train an ImageEncoder by rotation prediction on the camera images of data.train_split and save it to
    `out_path` (see pcseg.models.image_encoder). Settings: method.image_channels / image_layers / pretext_*.
    Returns {'images', 'steps', 'loss' (mean of the last 10% of steps), 'accuracy' (held-out crops), 'seconds'}."""
    from tqdm.auto import tqdm

    from pcseg.engine.build import build_source
    from pcseg.engine.trainer import resolve_device
    from pcseg.methods.slidr import RotationPretext, rotation_batch
    from pcseg.models.image_encoder import ImageEncoder, save_image_encoder

    _require_method(cfg, ("slidr",), "pretrain-2d")
    m = cfg.method
    if m.pretext_steps < 1 or m.pretext_batch < 1 or m.pretext_crop < 8:
        raise ConfigError(f"method: need pretext_steps >= 1, pretext_batch >= 1, pretext_crop >= 8, got "
                          f"{m.pretext_steps}, {m.pretext_batch}, {m.pretext_crop}")
    _setup(cfg)
    tic = time.perf_counter()
    images = camera_images(source if source is not None else build_source(cfg, cfg.data.train_split),
                           m.image_scale)
    held = images[-max(1, len(images) // 10):] if len(images) > 1 else images
    train = images[: len(images) - len(held)] if len(images) > 1 else images
    device = resolve_device(cfg.train.device)
    encoder = ImageEncoder(channels=m.image_channels, layers=m.image_layers)
    model = RotationPretext(encoder).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=m.pretext_lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, m.pretext_steps) / m.pretext_steps)))
    rng = np.random.default_rng(cfg.train.seed)
    losses = []
    model.train()
    for _ in tqdm(range(m.pretext_steps), desc="pretrain-2d", unit="step", disable=not progress,
                  dynamic_ncols=True):
        chosen = rng.integers(0, len(train), m.pretext_batch)
        crops, target = rotation_batch([train[i] for i in chosen], m.pretext_crop, rng)
        loss = model(crops.to(device), target.to(device))["rotation"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    crops, target = rotation_batch(held, m.pretext_crop, np.random.default_rng([cfg.train.seed, 1]))
    accuracy = model.accuracy(crops.to(device), target.to(device))
    result = {"images": len(images), "steps": m.pretext_steps,
              "loss": float(np.mean(losses[-max(1, len(losses) // 10):])), "accuracy": accuracy,
              "seconds": time.perf_counter() - tic}
    save_image_encoder(encoder, out_path, meta={"objective": "rotation", "dataset": cfg.data.dataset, **result})
    return result


# ------------------------------------------------------------------------------------------------- pretrain
def pair_dataset(cfg: Config, source=None):
    """The augmented training PointDataset of data.train_split wrapped in SlidrPairs (no label budget)."""
    from pcseg.engine.build import build_dataset, build_source
    from pcseg.methods.slidr import SlidrPairs
    from pcseg.superpixels import SuperpixelCache, SuperpixelParams

    m = cfg.method
    unlabeled = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, budget=""))
    source = source if source is not None else build_source(cfg, cfg.data.train_split)
    if len(source) and not source[0].extras.get("cameras"):
        raise ValueError(f"SLidR distils image features into the 3D backbone, so it needs image-lidar pairs: "
                         f"calibrated camera images with every scan (datasets kitti_object, nuscenes, "
                         f"semantickitti_cameras, synthetic_outdoor). Scene {source.scene_ids[0]!r} of "
                         f"{cfg.data.dataset} has none; point clouds alone (a folder dataset, a preprocessed "
                         f"folder) cannot be used for SLidR pre-training, with or without labels")
    dataset = build_dataset(unlabeled, cfg.data.train_split, True, source)
    dataset.keep_raw_coord = True  # points are projected with their coordinates as read
    params = SuperpixelParams(m.superpixels, m.n_segments, m.compactness, m.sigma)
    return SlidrPairs(dataset, SuperpixelCache(m.superpixel_cache or None, params), m.image_scale)


def build_pretrainer(cfg: Config, source=None):
    """Trainer of SLidR pre-training (no evaluation): checkpoints `<train.out_dir>/last.pt` hold the backbone."""
    from pcseg.data import collate
    from pcseg.engine.build import build_method
    from pcseg.engine.trainer import Trainer

    _require_method(cfg, ("slidr",), "pretrain")
    if not cfg.method.image_encoder:
        raise ConfigError("method.image_encoder is empty: give the checkpoint of an image encoder (train one with "
                          "`pcseg pretrain-2d CONFIG`)")
    if not Path(cfg.method.image_encoder).is_file():
        raise FileNotFoundError(f"method.image_encoder: checkpoint not found: {cfg.method.image_encoder} (train "
                                "one with `pcseg pretrain-2d CONFIG`)")
    _setup(cfg)
    pairs = pair_dataset(cfg, source)
    method = build_method(cfg, pairs.num_classes, pairs.in_channels)
    meta = {"in_channels": pairs.in_channels, "class_names": list(pairs.class_names),
            "num_classes": pairs.num_classes, "stage": "slidr pre-training"}
    return Trainer(cfg, method, pairs, collate, evaluate=None, extra_state=meta)


# ------------------------------------------------------------------------------------------------- finetune
class EveryNthScan:
    """Scene source of scans 0, n, 2n, ... of `source` (SLidR's 1% split: n = 100)."""

    def __init__(self, source, every: int) -> None:
        if every < 1:
            raise ValueError(f"--scan-every must be >= 1, got {every}")
        if len(source) == 0:
            raise ValueError("the training split has no scans")
        self.source, self.every = source, every
        self.scene_ids = list(source.scene_ids)[::every]
        self.class_names, self.num_classes = source.class_names, source.num_classes

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"scan {index} out of range for {len(self)} scans")
        return self.source[index * self.every]


def load_pretrained_backbone(method: nn.Module, path: str | Path) -> None:
    """Copy the `backbone.*` weights of a checkpoint (`pcseg pretrain`, or any trained method) into
    `method.backbone`; mismatched keys or shapes raise CheckpointError naming them."""
    from pcseg.methods.slidr import backbone_state

    state = ckpt.load(path)
    weights = backbone_state(state["model"])
    if not weights:
        raise ckpt.CheckpointError(f"{path} holds no backbone weights (keys 'backbone.*'): is it a checkpoint "
                                   "written by `pcseg pretrain`?")
    ckpt.load_model_state(method.backbone, weights, source=str(path))


def build_finetuner(cfg: Config, pretrained: Optional[str | Path] = None, scan_every: int = 1,
                    sources: Optional[Dict[str, Any]] = None):
    """Trainer of a supervised (or linear-probe) run on every `scan_every`-th training scan whose backbone starts
    from `pretrained` (None: random initialisation, the baseline). `sources` as for engine.build_trainer."""
    from pcseg.engine.build import build_source, build_trainer

    _require_method(cfg, ("supervised", "linear_probe"), "finetune")
    if pretrained is not None and not Path(pretrained).is_file():
        raise FileNotFoundError(f"--pretrained: checkpoint not found: {pretrained}")
    if pretrained is not None and cfg.train.init_from:
        raise ConfigError(f"--pretrained {pretrained} and train.init_from={cfg.train.init_from} both set the starting "
                          "weights: give one")
    sources = dict(sources or {})
    train = sources.get(cfg.data.train_split)
    train = train if train is not None else build_source(cfg, cfg.data.train_split)
    sources[cfg.data.train_split] = EveryNthScan(train, scan_every) if scan_every > 1 else train
    trainer = build_trainer(cfg, sources)
    if pretrained is not None:
        load_pretrained_backbone(trainer.method, pretrained)
        trainer.restart_ema()
        trainer.extra_state["pretrained"] = str(pretrained)
    trainer.extra_state["scan_every"] = scan_every
    return trainer


# ------------------------------------------------------------------------------------------------- commands
def add_pretrain_parsers(subparsers) -> None:
    """Add `pretrain-2d`, `pretrain` and `finetune` to the CLI's subparsers (each sets `func`)."""
    overrides = "config overrides section.key=value, e.g. method.image_scale=0.5 train.steps=2000"
    p = subparsers.add_parser(
        "pretrain-2d", help="self-supervised image encoder for SLidR (rotation prediction, offline)",
        description="Train the small ResNet-style image encoder on the camera images of data.train_split by "
                    "predicting image rotations, and save it as the checkpoint method.image_encoder points to. "
                    "Nothing is downloaded.")
    p.add_argument("config", help="YAML config with method.name: slidr, e.g. configs/synthetic/slidr.yaml")
    p.add_argument("--out", help="checkpoint to write (default: method.image_encoder, else "
                                 "<train.out_dir>/image_encoder.pt)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=overrides)
    p.set_defaults(func=run_pretrain_2d)

    p = subparsers.add_parser(
        "pretrain", help="SLidR image-to-lidar distillation into the 3D backbone (no labels)",
        description="Pre-train the 3D backbone on image-lidar pairs: superpixel-pooled point and pixel features, "
                    "InfoNCE between matching superpixels, the image encoder (method.image_encoder) frozen. Writes "
                    "<train.out_dir>/last.pt, the --pretrained checkpoint of `pcseg finetune`.")
    p.add_argument("config", help="YAML config with method.name: slidr")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (e.g. <out_dir>/last.pt)")
    p.add_argument("--out", help="output folder (same as train.out_dir=...)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=overrides)
    p.set_defaults(func=run_pretrain)

    p = subparsers.add_parser(
        "finetune", help="fine-tune or linear-probe from a pre-trained 3D backbone, on every n-th scan",
        description="Supervised training (method.name: supervised) or a linear probe on the frozen backbone "
                    "(method.name: linear_probe) whose backbone starts from --pretrained; --scan-every 100 keeps "
                    "every 100th training scan (SLidR's 1%% setting). Evaluates on data.val_split at the end.")
    p.add_argument("config", help="YAML config, e.g. configs/synthetic/slidr_finetune.yaml")
    p.add_argument("--pretrained", metavar="CKPT", help="checkpoint of `pcseg pretrain` (omit: random init)")
    p.add_argument("--scan-every", type=int, default=1, metavar="N", help="train on scans 0, N, 2N, ...")
    p.add_argument("--out", help="output folder (same as train.out_dir=...)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=overrides)
    p.set_defaults(func=run_finetune)


def _config(args: argparse.Namespace) -> Config:
    extra = [f"train.out_dir={args.out}"] if getattr(args, "out", None) and args.command != "pretrain-2d" else []
    return load_config(args.config, list(args.overrides) + extra)


def run_pretrain_2d(args: argparse.Namespace) -> int:
    cfg = _config(args)
    _require_method(cfg, ("slidr",), "pretrain-2d")
    out = Path(args.out or cfg.method.image_encoder or Path(cfg.train.out_dir) / "image_encoder.pt")
    result = pretrain_image_encoder(cfg, out, progress=not args.no_progress)
    print(f"image encoder: {out} ({result['images']} images, {result['steps']} steps, rotation loss "
          f"{result['loss']:.3f}, held-out rotation accuracy {100 * result['accuracy']:.1f}%)")
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from pcseg.engine import distributed as dist_utils

    cfg = _config(args)
    if args.resume and not Path(args.resume).is_file():
        raise FileNotFoundError(f"--resume: checkpoint not found: {args.resume}")
    trainer = build_pretrainer(cfg)
    try:
        result = trainer.fit(resume=args.resume)
    finally:
        dist_utils.cleanup()
    if trainer.rank == 0:
        loss = result["losses"].get("slidr", float("nan"))
        print(f"pre-trained {result['step']} steps (InfoNCE {loss:.3f}); checkpoint {trainer.checkpoint_path}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from pcseg.cli import _print_metrics
    from pcseg.engine import distributed as dist_utils

    cfg = _config(args)
    trainer = build_finetuner(cfg, args.pretrained, args.scan_every)
    try:
        result = trainer.fit()
    finally:
        dist_utils.cleanup()
    if trainer.rank == 0:
        start = f"from {args.pretrained}" if args.pretrained else "from random initialisation"
        print(f"trained {result['step']} steps {start} on {trainer.sampler.n} scans; checkpoint "
              f"{trainer.checkpoint_path}")
        if result["eval"] is not None:
            _print_metrics(result["eval"])
    return 0


__all__ = ["camera_images", "pretrain_image_encoder", "pair_dataset", "build_pretrainer", "EveryNthScan",
           "load_pretrained_backbone", "build_finetuner", "add_pretrain_parsers"]
