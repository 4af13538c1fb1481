"""Shared fixtures: the recorded vendor responses, and the emulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, make_space

FIXTURES = Path(os.environ.get(
    "LOCALCACHE_FIXTURES",
    str(Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"),
))


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"recorded vendor fixtures not found at {FIXTURES} "
                    "(set LOCALCACHE_FIXTURES to ../shared/fixtures)")
    return FIXTURES


@pytest.fixture
def load_fixture(fixtures_dir: Path) -> Any:
    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((fixtures_dir / name).read_text(encoding="utf-8"))
        return data

    return load


@pytest.fixture
def store_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "store.sqlite3"


# -- the emulator ---------------------------------------------------------------------------

@pytest.fixture
def space() -> Any:
    return make_space()


@pytest.fixture
def emulator(space: Any) -> Iterator[Any]:
    from localcache.emulator import Emulator

    with Emulator(space, access_token=TOKEN) as emu:
        yield emu
