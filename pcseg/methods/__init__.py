"""Training methods: name -> class. Each is built as `Method(backbone, num_classes, cfg)` (see base.py)."""
from pcseg.methods.base import MethodConfig
from pcseg.methods.supervised import Supervised

METHODS = {
    "supervised": Supervised,
}

__all__ = ["METHODS", "MethodConfig", "Supervised"]
