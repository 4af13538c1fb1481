"""Contentstack and Kontent.ai ask for their next page while the page before it is parsed
(providers/ahead.py), against their emulators over loopback HTTP.

The same sync runs twice, with asking ahead allowed and with it refused: while the writer
holds page 1, the first has already sent one request more; both end with the same store, and
neither sends a request it does not use.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from localcache import Cache, Contentstack, Kontent, signals
from localcache.emulator import Emulator
from localcache.emulator.project import Project
from localcache.emulator.stack import Stack
from localcache.providers import ahead as ahead_module
from localcache.providers import kontent as kontent_module

TOKEN = "cs-token"
ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"
PAGE = 10
ENTRIES = 60


def stack() -> Stack:
    built = Stack(api_key="blt_api", environment="production", locales=["en-us"],
                  branch="main")
    for n in range(ENTRIES):
        built.publish_entry(f"e{n:03d}", "article", "en-us", {"title": f"Article {n}"})
    return built


def project() -> Project:
    built = Project(environment_id=ENV_ID, languages=["default"])
    built.add_type("article", elements={"title": "text"})
    for n in range(ENTRIES):
        built.upsert_variant(f"i{n:03d}", f"article_{n}", "article", "default",
                             {"title": f"Article {n}"})
    return built


VENDORS: dict[str, Any] = {
    "contentstack": (stack, TOKEN,
                     lambda url: Contentstack("blt_api", TOKEN, "production", base_url=url)),
    "kontent": (project, None, lambda url: Kontent(ENV_ID, base_url=url)),
}


def run(vendor: str, path: Path) -> tuple[int, int, list[tuple[str, Any]]]:
    """A sync with the writer held at page 1: the requests served by then, in all, and the
    store's content."""
    model, token, provider = VENDORS[vendor]
    with Emulator(model(), access_token=token, page_size=PAGE) as emulator:
        held: list[int] = []

        def hold(sender: Any, changes: Any) -> None:
            if changes.page == 1:
                time.sleep(0.3)
                held.append(emulator.requests_served)

        with Cache(provider(emulator.base_url), path=path) as cache, \
                signals.changes_committed.connected_to(hold, sender=cache):
            result = cache.sync()
            assert result.pages >= ENTRIES // PAGE
            content = sorted((r.id, r.field("title")) for r in cache.entries())
        return held[0], emulator.requests_served, content


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_the_next_page_is_asked_for_ahead(
    vendor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ahead_at_hold, ahead_total, ahead_content = run(vendor, tmp_path / "ahead.sqlite3")
    monkeypatch.setattr(ahead_module, "pages_awaited", lambda: False)
    turn_at_hold, turn_total, turn_content = run(vendor, tmp_path / "turn.sqlite3")
    assert len(ahead_content) == ENTRIES and ahead_content == turn_content
    # Page 2 fetched by the prefetch in both; page 3 asked for as page 2 was parsed in one.
    assert ahead_at_hold == turn_at_hold + 1
    assert ahead_total == turn_total  # every request sent ahead was used


def test_kontent_reads_its_languages_once_a_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine reads the languages as a sync starts; the first load's passes reuse them
    instead of asking again."""
    def initial_sync_requests(path: Path) -> int:
        with Emulator(project(), access_token=None, page_size=PAGE) as emulator, \
                Cache(Kontent(ENV_ID, base_url=emulator.base_url), path=path) as cache:
            cache.sync()
            assert cache.count() == ENTRIES
            return emulator.requests_served

    reused = initial_sync_requests(tmp_path / "reused.sqlite3")
    monkeypatch.setattr(kontent_module, "LANGUAGES_FRESH", 0.0)
    asked_again = initial_sync_requests(tmp_path / "again.sqlite3")
    assert asked_again == reused + 1
