"""Active-learning settings: how points are scored and selected, and how the simulation loop grows the budget.

They live in an `active:` section of a run's YAML file (next to data, model, method, ...) and take `active.key=value`
overrides; everything else in the file is the engine's Config. `load_active_config` splits the two.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from pcseg.active.uncertainty import STRATEGIES
from pcseg.engine.config import Config, ConfigError, _fill, build_config, parse_overrides, read_yaml
from pcseg.weak.budget import parse_budget


@dataclass
class ActiveConfig:
    strategy: str = field(default="hierarchical", metadata={
        "choices": STRATEGIES, "help": "point score: hierarchical (HPAL), margin, entropy, random or coverage "
                                     "(farthest-point over the geometry, no model)"})
    levels: Tuple[float, ...] = field(default=(0.1, 0.5, 1.0), metadata={
        "help": "hierarchical: grid cell sizes in metres, finest first"})
    parent_weight: float = field(default=0.1, metadata={
        "help": "hierarchical: share of its parent's score each level adds"})
    suppression: bool = field(default=True, metadata={
        "help": "feature-distance suppression of near-duplicate picks (not used by random)"})
    radius: float = field(default=0.2, metadata={"help": "suppression radius in metres"})
    similarity: float = field(default=0.8, metadata={"help": "suppression: cosine similarity above which to drop"})
    random_share: float = field(default=0.0, metadata={
        "help": "share of each selection picked uniformly at random among the candidates, the rest by the "
                "strategy (exploration: reaches regions the model is confidently wrong about)"})
    pool_factor: float = field(default=4.0, metadata={
        "help": "candidates kept per scene: this multiple of the scene's share of the round's budget"})
    min_pool: int = field(default=64, metadata={"help": "candidates kept per scene at least"})
    seed: int = field(default=0, metadata={"help": "seed of the random strategy and of the initial budget"})
    initial: str = field(default="ratio:0.0002", metadata={
        "help": "active-loop: random first labels, a budget spec (points:N per scene, ratio:r, scenes:f)"})
    round_ratio: float = field(default=0.0002, metadata={
        "help": "active-loop: fraction of all training points labeled per selection round"})
    round_points: int = field(default=0, metadata={
        "help": "active-loop: points labeled per selection round (overrides round_ratio when > 0)"})
    rounds: int = field(default=4, metadata={"help": "active-loop: selection rounds after the initial training"})
    warm_start: bool = field(default=False, metadata={
        "help": "active-loop: each round's training starts from the previous round's final weights (student and "
                "teacher; a new optimizer, schedule and pseudo-label ramp) instead of from scratch"})

    def check(self) -> "ActiveConfig":
        """Raise ConfigError naming the first bad value; returns self."""
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"active.strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        levels = list(self.levels)
        if self.strategy == "hierarchical" and (not levels or any(s <= 0 for s in levels)
                                                or any(b <= a for a, b in zip(levels, levels[1:]))):
            raise ConfigError(f"active.levels must be positive, strictly increasing cell sizes, got {levels}")
        checks = [("parent_weight", self.parent_weight >= 0), ("radius", self.radius > 0),
                  ("similarity", -1.0 <= self.similarity <= 1.0), ("pool_factor", self.pool_factor >= 1.0),
                  ("min_pool", self.min_pool >= 1),
                  ("random_share", 0.0 <= self.random_share <= 1.0), ("round_ratio", 0.0 <= self.round_ratio <= 1.0),
                  ("round_points", self.round_points >= 0), ("rounds", self.rounds >= 0)]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"active.{name}: invalid value {getattr(self, name)!r}")
        if self.round_points == 0 and self.round_ratio == 0.0 and self.rounds > 0:
            raise ConfigError("active: set round_ratio or round_points to label points in each round")
        try:
            parse_budget(self.initial)
        except ValueError as error:
            raise ConfigError(f"active.initial: {error}") from None
        return self


def split_overrides(overrides: Sequence[str]) -> Tuple[List[str], Dict[str, Any]]:
    """(engine overrides, {key: value} of the `active.` ones)."""
    engine, active = [], {}
    for item in overrides:
        if item.strip().startswith("active."):
            active.update(parse_overrides([item])["active"])
        else:
            engine.append(item)
    return engine, active


def load_active_config(path: Union[str, Path, None] = None, overrides: Sequence[str] = (),
                       base: Optional[Dict[str, Any]] = None) -> Tuple[Config, ActiveConfig]:
    """(engine Config, ActiveConfig) from defaults <- `base` (a checkpoint's config) <- YAML `path` <- overrides.

    The YAML file's `active:` section and the `active.key=value` overrides fill ActiveConfig; the rest is the
    engine's (unknown keys of either are errors that list the valid ones).
    """
    engine_overrides, active_values = split_overrides(overrides)
    layers = []
    active = ActiveConfig()
    if base is not None:
        layers.append(("checkpoint config", base))
    if path is not None:
        data = read_yaml(path)
        _fill(active, data.pop("active", None) or {}, "active", str(path))
        layers.append((str(path), data))
    if engine_overrides:
        layers.append(("command line", parse_overrides(engine_overrides)))
    _fill(active, active_values, "active", "command line")
    return build_config(layers), active.check()
