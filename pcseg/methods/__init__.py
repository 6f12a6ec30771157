"""Training methods: name -> class. Each is built as `Method(backbone, num_classes, cfg)` (see base.py)."""
from pcseg.methods.base import MethodConfig
from pcseg.methods.cpcm import CPCM
from pcseg.methods.hpal import HPAL
from pcseg.methods.slidr import LinearProbe, Slidr
from pcseg.methods.supervised import Supervised

METHODS = {
    "supervised": Supervised,
    "cpcm": CPCM,
    "hpal": HPAL,
    "slidr": Slidr,
    "linear_probe": LinearProbe,
}

__all__ = ["METHODS", "MethodConfig", "Supervised", "CPCM", "HPAL", "Slidr", "LinearProbe"]
