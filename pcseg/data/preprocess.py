"""Convert a raw release into the on-disk format (`pcseg preprocess {scannet,s3dis,semantickitti,folder} SRC DST`).

Parallel (multiprocessing), resumable (scenes whose folder exists are skipped; writes are atomic), with a tqdm
progress bar and a summary of the problems found: damaged lines that were repaired or skipped (warnings raised
by the readers) and scenes that could not be read at all (the error, per scene; the other scenes go on).
A folder dataset (pcseg.data.folder) has every file checked against its YAML on the way: the bad files are listed
with their reasons and left out of the splits of meta.json, so the good scenes are ready for training.
"""
from __future__ import annotations

import multiprocessing
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from pcseg.data.folder import FolderFileError
from pcseg.data.ondisk import clean_partial, is_done, write_meta, write_scene

PathLike = Union[str, os.PathLike]
SPLITS: Dict[str, Tuple[str, ...]] = {
    "scannet": ("train", "val", "test"),
    "s3dis": ("train", "val"),
    "semantickitti": ("train", "val", "test"),
}


@dataclass
class PreprocessReport:
    """What `preprocess` did: scene counts, problems (repaired / skipped data, one message each) and failures
    (scene id -> error message)."""

    written: int = 0
    skipped: int = 0
    problems: List[str] = field(default_factory=list)
    failures: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"written {self.written} scenes, skipped {self.skipped} already done, "
                 f"{len(self.failures)} failed, {len(self.problems)} data problems"]
        lines += [f"  problem: {p}" for p in self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"  ... {len(self.problems) - 20} more problems")
        lines += [f"  FAILED {sid}: {error}" for sid, error in self.failures.items()]
        return "\n".join(lines)


_WORKER: Dict[str, object] = {}


def _init_worker(dataset: str, src: str, dst: str, options: dict, splits: Sequence[str]) -> None:
    from pcseg.data.dataset import build_source

    _WORKER["dst"] = dst
    _WORKER["sources"] = {split: build_source(dataset, src, split, **options) for split in splits}


def _convert(task: Tuple[str, int, str]) -> Tuple[str, Optional[str], List[str]]:
    """Read and write one scene in a worker -> (scene id, error or None, problems)."""
    split, index, scene_id = task
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            scene = _WORKER["sources"][split][index]
            write_scene(scene.replace(extras={}), _WORKER["dst"])
            error = None
        except FolderFileError as exc:  # names the file and its problems
            error = str(exc)
        except Exception as exc:  # one unreadable scene must not stop the others; it is reported
            error = f"{type(exc).__name__}: {exc}"
    return scene_id, error, [str(w.message) for w in caught]


def preprocess(dataset: str, src: PathLike, dst: PathLike, workers: int = 2, splits: Optional[Sequence[str]] = None,
               progress: bool = True, **source_options) -> PreprocessReport:
    """Convert `dataset` ("scannet", "s3dis", "semantickitti", "folder") from the raw folder `src` into `dst`.

    workers         processes (0 or 1: in this process)
    splits          which splits to convert (default: all of the dataset's; a folder's: those of its YAML + "all")
    source_options  passed to the reader (e.g. split_dir= for ScanNet, test_area= for S3DIS, spec= for a folder)
    Returns a PreprocessReport (also printed when `progress`). Running again resumes where it stopped. A folder's
    failures are its bad files: meta.json leaves them out of the splits (the other datasets list every scene).
    """
    from tqdm import tqdm

    from pcseg.data.dataset import build_source
    from pcseg.data.folder import FolderDataset

    folder = dataset == "folder"
    if dataset not in SPLITS and not folder:
        raise ValueError(f"preprocess: dataset must be one of {sorted(SPLITS) + ['folder']}, got {dataset!r}")
    splits = tuple(splits or (FolderDataset(src, "all", **source_options).splits if folder else SPLITS[dataset]))
    src, dst = str(Path(src)), Path(dst)
    sources = {split: build_source(dataset, src, split, **source_options) for split in splits}
    first = next(iter(sources.values()))
    if not folder:
        write_meta(dst, dataset, first.class_names, {split: list(s.scene_ids) for split, s in sources.items()})
    clean_partial(dst)
    report = PreprocessReport()
    tasks, seen = [], set()
    for split, source in sources.items():
        for index, scene_id in enumerate(source.scene_ids):
            if scene_id in seen:
                continue
            seen.add(scene_id)
            if is_done(dst, scene_id):
                report.skipped += 1
            else:
                tasks.append((split, index, scene_id))
    bar = tqdm(total=len(tasks), desc=f"preprocess {dataset}", unit="scene", disable=not progress)
    if workers > 1 and len(tasks) > 1:
        with multiprocessing.get_context().Pool(workers, _init_worker,
                                                (dataset, src, str(dst), source_options, splits)) as pool:
            results = pool.imap_unordered(_convert, tasks)
            _collect(results, report, bar)
    else:
        _init_worker(dataset, src, str(dst), source_options, splits)
        _collect(map(_convert, tasks), report, bar)
        _WORKER.clear()
    bar.close()
    if folder:
        write_meta(dst, dataset, first.class_names,
                   {split: [sid for sid in s.scene_ids if sid not in report.failures] for split, s in sources.items()},
                   defaults=first.defaults)
    if progress:
        print(report.summary())
    return report


def _collect(results, report: PreprocessReport, bar) -> None:
    for scene_id, error, problems in results:
        report.problems += problems
        if error is None:
            report.written += 1
        else:
            report.failures[scene_id] = error
        bar.update(1)
