"""Shared test helpers: where the real sample files live."""
from pathlib import Path

import pytest

# Real sample files and official metadata (see ../shared/data/SOURCES.md), next to the repository, never in it.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder; skips the test with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (see shared/data/SOURCES.md)")
    return SHARED_DATA
