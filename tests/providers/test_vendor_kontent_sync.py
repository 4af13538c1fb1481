"""Kontent.ai through Cache.sync() and the emulator: a first load whose items-feed continuation
is refused recovers on its own, and Sync API v2 pages on while any of its arrays is full."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from localcache import Cache, HttpPolicy, Kontent, SyncError
from localcache.emulator import Emulator, Project

ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"


def _project(items: int) -> Project:
    project = Project(environment_id=ENV_ID, languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text"})
    for number in range(items):
        _publish(project, number, "default", f"T{number}")
        if number % 2:
            _publish(project, number, "es-ES", f"E{number}")
    return project


def _publish(project: Project, number: int, language: str, title: str) -> None:
    project.upsert_variant(f"00000000-0000-4000-8000-{number:012d}", f"item_{number}",
                           "article", language, {"title": title})


def _stored(cache: Cache) -> dict[tuple[str, str], str]:
    return {(record.id, language): element["value"] for record in cache.entries()
            for language, element in record.fields["title"].items()}


def _published(project: Project) -> dict[tuple[str, str], str]:
    return {key: item["elements"]["title"]["value"] for key, item in project.published().items()}


@pytest.mark.parametrize("version", [1, 2])
def test_a_refused_feed_continuation_rebuilds_without_full(tmp_path: Path, version: int) -> None:
    project = _project(8)
    with Emulator(project, access_token=None, page_size=3) as emu, \
            Cache(Kontent(ENV_ID, api_version=version, base_url=emu.base_url,
                          http=HttpPolicy(max_attempts=1)), path=tmp_path / "k.sqlite3") as cache:
        feeds: list[str] = []

        def break_second_feed_page(path: str, query: dict[str, list[str]]) -> None:
            feeds.extend([path] if path.endswith("/items-feed") else [])
            if len(feeds) == 2:
                emu.faults.server_error(status=502)

        emu.faults.on_request = break_second_feed_page
        with pytest.raises(SyncError):
            cache.sync()                        # the first load stops between feed pages
        assert cache.stats()["sync_in_progress"]
        later: list[str] = []
        emu.faults.on_request = lambda path, query: later.append(path.rsplit("/", 1)[-1])
        emu.faults.invalidate_tokens_before_now()   # the stored feed continuation: 400 now
        result = cache.sync()                   # a plain sync recovers: no full=True
        assert result.initial
        # The stored continuation was refused, and the first load started over from an init.
        listed = [name for name in later if name not in ("languages", "types")]
        assert listed[:2] == ["items-feed", "init"]
        assert _stored(cache) == _published(project)
        _publish(project, 0, "es-ES", "later")
        assert not cache.sync().initial         # the rebuilt store syncs deltas again
        assert _stored(cache) == _published(project)


def _add_types(project: Project, count: int) -> None:
    for number in range(count):
        project.add_type(f"type_{number}", elements={"title": "text"})


def _add_languages(project: Project, count: int) -> None:
    for number in range(count):
        project.add_language(f"lang-{number}")


def _add_taxonomies(project: Project, count: int) -> None:
    for number in range(count):
        project.upsert_taxonomy(f"taxonomy_{number}", ["term"])


@pytest.mark.parametrize("add", [_add_types, _add_languages, _add_taxonomies],
                         ids=["types", "languages", "taxonomies"])
def test_v2_pages_on_while_any_array_is_full(tmp_path: Path,
                                             add: Callable[[Project, int], None]) -> None:
    project = _project(2)
    with Emulator(project, access_token=None) as emu, \
            Cache(Kontent(ENV_ID, base_url=emu.base_url), path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        add(project, 150)                       # a full page (100) of one array, then 50
        _publish(project, 0, "default", "edited")   # items: one change, far from full
        result = cache.sync()
        assert result.pages == 2 and result.entries.updated == 1
        _publish(project, 1, "default", "edited later")
        assert cache.sync().entries.updated == 1    # the token stored was the sync's last
        assert _stored(cache) == _published(project)
