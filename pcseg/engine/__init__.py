"""Training engine: typed configs, trainer, evaluation, checkpoints, distributed training."""
