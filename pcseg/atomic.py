"""Atomic file writes: the content goes to a temporary file next to the target (`.<name>.<random>.tmp`), which is
then renamed over it. A reader never sees a half-written file, and after a crash the previous version is intact;
a process killed mid-write leaves at most the temporary file (`submission.remove_partial` and
`ondisk.clean_partial` delete those in their folders)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Callable, Union

PathLike = Union[str, Path]


def _new_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")


def write_atomic(path: PathLike, write: Callable[[IO], object], text: bool = False) -> Path:
    """Call `write(handle)` on a temporary file next to `path` (binary, or UTF-8 text with `text`, newlines written as
    given), flush it to disk, then rename it to `path`, creating the parent folders -> `path`. On any error the
    temporary file is removed and `path` is left as it was. The file gets the mode of any new file (umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _new_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:  # another writer drew the same name
            continue
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") if text else os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def temp_folder(final: PathLike) -> Path:
    """A new empty folder `.<name>.<random>.tmp` next to `final` (parents created), with the mode of any new folder:
    fill it, then rename it to `final`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    while True:
        folder = _new_name(final)
        try:
            folder.mkdir(0o777)
            return folder
        except FileExistsError:
            continue


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write the string `text` (UTF-8) to `path` atomically -> `path`."""
    return write_atomic(path, lambda handle: handle.write(text), text=True)
