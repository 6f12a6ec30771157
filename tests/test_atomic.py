import os
import stat

import pytest

from pcseg.atomic import temp_folder, write_atomic, write_text_atomic


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_creates_parents_and_replaces_the_old_content(tmp_path):
    path = tmp_path / "a" / "b" / "data.bin"
    assert write_atomic(path, lambda handle: handle.write(b"\x00\x01")) == path
    assert path.read_bytes() == b"\x00\x01"
    write_text_atomic(path, "zweite Fassung\r\nline 2\n")
    assert path.read_bytes() == "zweite Fassung\r\nline 2\n".encode("utf-8")  # UTF-8, newlines as given
    assert os.listdir(path.parent) == ["data.bin"]


def test_a_failing_writer_leaves_the_previous_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "labels.csv"
    write_text_atomic(path, "old\n")

    def fail(handle):
        handle.write("half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(path, fail, text=True)
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["labels.csv"]


def test_files_and_folders_get_the_mode_of_any_new_file(tmp_path):
    mask = current_umask()
    path = write_text_atomic(tmp_path / "x.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    folder = temp_folder(tmp_path / "scenes" / "room_1")
    assert folder.parent == tmp_path / "scenes" and folder.name.startswith(".room_1.") and folder.name.endswith(".tmp")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask and not any(folder.iterdir())
