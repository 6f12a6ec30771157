"""Active learning (HPAL): point uncertainty, feature-distance suppression, `pcseg select`, the annotator round
trip and the `pcseg active-loop` simulation. The semi-supervised teacher is `pcseg.methods.hpal`."""
from pcseg.active.annotator import AnnotationError, export_picks, import_annotations, read_annotations
from pcseg.active.config import ActiveConfig, load_active_config
from pcseg.active.loop import RoundResult, format_rounds, run_active_loop
from pcseg.active.select import Selection, select_points, write_round
from pcseg.active.suppression import suppress
from pcseg.active.uncertainty import (
    MODEL_FREE,
    STRATEGIES,
    coverage_scores,
    entropy_uncertainty,
    hierarchical_uncertainty,
    margin,
    margin_uncertainty,
    random_uncertainty,
)

__all__ = [
    "AnnotationError", "export_picks", "import_annotations", "read_annotations", "ActiveConfig",
    "load_active_config", "RoundResult", "format_rounds", "run_active_loop", "Selection", "select_points",
    "write_round", "suppress", "MODEL_FREE", "STRATEGIES", "coverage_scores", "entropy_uncertainty",
    "hierarchical_uncertainty", "margin", "margin_uncertainty", "random_uncertainty",
]
