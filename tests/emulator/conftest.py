"""Fixtures for the emulator tests: a small space, a running emulator, a naive CDA client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcache.emulator import Emulator, Space

from .helpers import TOKEN, Cda, make_space


@pytest.fixture
def space() -> Space:
    return make_space()


@pytest.fixture
def emu(space: Space) -> Iterator[Emulator]:
    with Emulator(space, access_token=TOKEN, page_size=100) as emulator:
        yield emulator


@pytest.fixture
def cda(emu: Emulator) -> Iterator[Cda]:
    client = Cda(emu)
    yield client
    client.close()
