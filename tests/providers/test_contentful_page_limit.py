"""Contentful's initial sync asks for 1000 items a page, and halves the page size when the
server refuses a page as too big (400 BadRequest, "Response size too big"), unseen by the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcache import Cache, Contentful, TokenRejectedError
from localcache.emulator import Emulator, generate_space

TOKEN = "limit-token"


def test_default_page_size_is_the_documented_maximum(tmp_path: Path) -> None:
    space = generate_space(entries=2500, assets=0, field_bytes=20, seed=1)
    with Emulator(space, access_token=TOKEN) as emu, Cache(
            Contentful(space.space_id, TOKEN, base_url=emu.base_url),
            path=tmp_path / "s.sqlite3") as cache:
        result = cache.sync()
        assert result.pages == 3  # 1000 + 1000 + 500, not 25 pages of the server's 100
        assert emu.requests_served >= 3
        assert cache.stats()["page_limit"] == 1000
        assert cache.count() == 2500


def test_a_page_too_big_is_asked_for_again_with_half_the_limit(tmp_path: Path) -> None:
    space = generate_space(entries=400, assets=4, field_bytes=300, seed=2)
    with Emulator(space, access_token=TOKEN) as emu:
        emu.faults.max_response_bytes = 150_000  # about 70 items of ~2 KB
        provider = Contentful(space.space_id, TOKEN, base_url=emu.base_url)
        with Cache(provider, path=tmp_path / "s.sqlite3") as cache:
            result = cache.sync()
            assert provider.limit_in_use == 62  # 1000 -> 500 -> 250 -> 125 -> 62
            assert result.entries.added == 400 and result.assets.added == 4
            assert result.pages == 7  # only the pages that fitted: 404 items, 62 a page
            assert cache.stats()["page_limit"] == 62
            space.publish_entry("new1", "author", {"name": {"en-US": "N"}})
            assert cache.sync().entries.added == 1


def test_a_later_page_too_big_starts_the_initial_sync_over(tmp_path: Path) -> None:
    """Page sizes vary with content: page 1 fits and a later page does not. The limit lives in
    the sync token, so the initial sync starts over, smaller; nothing is lost or doubled."""
    space = generate_space(entries=300, assets=0, field_bytes=20, seed=3)
    big = {"name": {"en-US": "x" * 60_000}}
    for number in range(5):
        space.publish_entry(f"zz-big-{number}", "author", big)  # sync order: last
    with Emulator(space, access_token=TOKEN) as emu:
        emu.faults.max_response_bytes = 200_000
        provider = Contentful(space.space_id, TOKEN, base_url=emu.base_url, limit=200)
        with Cache(provider, path=tmp_path / "s.sqlite3") as cache:
            result = cache.sync()
            assert provider.limit_in_use < 200
            assert cache.count() == 305
            assert result.entries.added == 305 and result.entries.updated == 0


def test_a_resumed_sync_whose_page_is_too_big_rebuilds_smaller(tmp_path: Path) -> None:
    space = generate_space(entries=300, assets=0, field_bytes=20, seed=4)
    with Emulator(space, access_token=TOKEN) as emu:
        db = tmp_path / "s.sqlite3"
        with Cache(Contentful(space.space_id, TOKEN, base_url=emu.base_url, limit=100),
                   path=db) as cache:
            cache.sync()
        for number in range(3):
            space.publish_entry(f"big{number}", "author", {"name": {"en-US": "y" * 60_000}})
        emu.faults.max_response_bytes = 100_000
        provider = Contentful(space.space_id, TOKEN, base_url=emu.base_url, limit=100)
        with pytest.raises(TokenRejectedError, match="starts over with 50 items"):
            list(provider.pages(_stored_token(db)))
        with Cache(provider, path=db) as cache:
            cache.sync()  # the delta page is too big: rebuilt with smaller pages
            assert cache.count() == 303
            assert provider.limit_in_use <= 50


def _stored_token(db: Path) -> object:
    from localcache.model import ContinuationToken

    with Cache.open(db) as cache:
        token = cache._store.token()
    assert token is not None
    return ContinuationToken(token.value, token.kind)
