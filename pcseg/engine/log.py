"""Run logs: one CSV row per logged step and TensorBoard event files (when tensorboard is installed)."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Dict, List, Optional


class RunLogger:
    """Writes scalars to `<out_dir>/log.csv` and `<out_dir>/tb/`. Only rank 0 should create one.

    The CSV header is the union of the keys seen so far; a new key rewrites the file with the wider header.
    On resume, rows after the resumed step are dropped so the log reads like one uninterrupted run.
    """

    def __init__(self, out_dir: Path, resume_step: Optional[int] = None, tensorboard: bool = True) -> None:
        self.path = Path(out_dir) / "log.csv"
        self.rows: List[Dict[str, float]] = []  # every row, kept to rewrite the file when a column appears
        self.keys: List[str] = ["step"]
        if resume_step is not None and self.path.is_file():
            with self.path.open() as f:
                for row in csv.DictReader(f):
                    if int(float(row["step"])) <= resume_step:
                        self.rows.append({k: float(v) for k, v in row.items() if v != ""})
                        self.rows[-1]["step"] = int(self.rows[-1]["step"])
            for row in self.rows:
                self.keys += [k for k in row if k not in self.keys]
            self._rewrite()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("tensorboard is not installed: logging to CSV only (pip install tensorboard)")
            else:
                self.tb = SummaryWriter(str(Path(out_dir) / "tb"), purge_step=resume_step)

    def log(self, step: int, values: Dict[str, float]) -> None:
        row = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.keys]
        if new or not self.path.is_file():
            self.keys += new
            self._rewrite()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, self.keys).writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.keys)
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
