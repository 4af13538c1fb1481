"""Signals tell the truth: every page's changes, as stored, for all three vendors; net counts;
page numbers that keep rising; and recovery that needs no help from the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SignalLedger, article, assert_converged, break_after, make_cache

from localcache import Cache, Contentstack, HttpPolicy, Kontent, SyncError, signals
from localcache.emulator import Emulator, Project, Stack

TOKEN = "vendor-test-token"
POLICY = HttpPolicy(max_attempts=1)


class Events:
    """Every per-record signal and ChangeSet of one cache, in order (held strongly)."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.log: list[tuple[str, str, Any]] = []  # (what, id, record or None)
        self.change_sets: list[Any] = []
        self.progress: list[int] = []
        self._pairs = [
            (signals.entry_changed, lambda s, **kw: self.log.append(
                ("changed", kw["id"], kw["record"]))),
            (signals.entry_deleted, lambda s, **kw: self.log.append(("deleted", kw["id"], None))),
            (signals.asset_changed, lambda s, **kw: self.log.append(
                ("asset_changed", kw["id"], kw["record"]))),
            (signals.changes_committed, lambda s, **kw: self.change_sets.append(kw["changes"])),
            (signals.sync_progress, lambda s, **kw: self.progress.append(kw["page"])),
        ]
        for signal, receiver in self._pairs:
            signal.connect(receiver, sender=cache, weak=False)

    def of(self, record_id: str) -> list[tuple[str, Any]]:
        return [(what, record) for what, i, record in self.log if i == record_id]

    def clear(self) -> None:
        self.log.clear()
        self.change_sets.clear()
        self.progress.clear()

    def close(self) -> None:
        for signal, receiver in self._pairs:
            signal.disconnect(receiver, sender=self.cache)


@pytest.fixture
def events() -> Iterator[list[Events]]:
    opened: list[Events] = []
    yield opened
    for e in opened:
        e.close()


# -- Contentstack ----------------------------------------------------------------------------


def _stack_cache(emulator: Emulator, path: Path) -> Cache:
    return Cache(Contentstack("blt_api", TOKEN, "production", base_url=emulator.base_url,
                              http=POLICY), path=path)


def test_contentstack_record_gone_and_back_in_one_delta(store_path: Path,
                                                       events: list[Events]) -> None:
    """Page 1 unpublishes en-us (the record stays in fr-fr), page 2 unpublishes fr-fr (the
    record goes), page 3 publishes de-de (it is back). Three signals, the last one true."""
    stack = Stack(api_key="blt_api", environment="production",
                  locales=["en-us", "fr-fr", "de-de"])
    stack.publish_entry("e1", "blog", "en-us", {"title": "one"})
    stack.publish_entry("e1", "blog", "fr-fr", {"title": "un"})
    stack.publish_entry("e2", "blog", "en-us", {"title": "two"})
    with Emulator(stack, access_token=TOKEN, page_size=1) as emulator, \
            _stack_cache(emulator, store_path) as cache:
        cache.sync()
        got = Events(cache)
        events.append(got)
        stack.unpublish_entry("e1", "en-us")
        stack.unpublish_entry("e1", "fr-fr")
        stack.publish_entry("e1", "blog", "de-de", {"title": "eins"})
        stack.publish_entry("e3", "blog", "en-us", {"title": "three"})
        stack.delete_entry("e3", "en-us")
        stack.delete_entry("e2", "en-us")
        result = cache.sync()
        stored = cache.entry("e1")
        assert stored is not None and stored.fields["title"] == {"de-de": "eins"}
        assert [what for what, _ in got.of("e1")] == ["changed", "deleted", "changed"]
        first = got.of("e1")[0][1]  # the merged record as stored, not the page's fragment
        assert first.fields["title"] == {"fr-fr": "un"}
        assert "sys" in first.raw and first.raw["sys"]["id"] == "e1"
        assert first.field("title", "fr-fr") == "un" and first.content_type == "blog"
        last = got.of("e1")[-1][1]
        assert last.raw == stored.raw and last.revision == stored.revision
        assert [w for w, _ in got.of("e3")] in ([], ["changed", "deleted"])
        # Net: e1 present at both ends (updated), e2 gone (deleted), e3 never held (nothing).
        assert (result.entries.added, result.entries.updated, result.entries.deleted) == \
            (0, 1, 1)
        pages = [c.page for c in got.change_sets]
        assert pages == list(range(1, len(pages) + 1)) and got.progress == pages


def test_contentstack_signals_carry_every_locale(store_path: Path,
                                                 events: list[Events]) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us", "fr-fr"])
    stack.publish_entry("e1", "blog", "en-us", {"title": "one"})
    with Emulator(stack, access_token=TOKEN) as emulator, \
            _stack_cache(emulator, store_path) as cache:
        cache.sync()
        got = Events(cache)
        events.append(got)
        stack.publish_entry("e1", "blog", "fr-fr", {"title": "un"})
        cache.sync()
        ((what, record),) = got.of("e1")
        assert what == "changed"
        assert record.fields["title"] == {"en-us": "one", "fr-fr": "un"}
        assert record.field("title") == "one" and record.content_type == "blog"
        assert record.raw == cache.entry("e1").raw


# -- Kontent.ai ------------------------------------------------------------------------------

ITEM = "00000000-0000-4000-8000-000000000001"
OTHER = "00000000-0000-4000-8000-000000000002"


@pytest.mark.parametrize("version", [1, 2])
def test_kontent_variant_changes_signal_the_merged_item(store_path: Path, events: list[Events],
                                                        version: int) -> None:
    project = Project(environment_id="975bf280-fd91-488c-994c-2f04416e5ee3",
                      languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text"})
    project.upsert_variant(ITEM, "item_1", "article", "default", {"title": "hello"})
    with Emulator(project, access_token=None, page_size=1 if version == 1 else 100) as emu, \
            Cache(Kontent(project.environment_id, api_version=version, base_url=emu.base_url,
                          http=POLICY), path=store_path) as cache:
        cache.sync()
        got = Events(cache)
        events.append(got)
        project.upsert_variant(ITEM, "item_1", "article", "es-ES", {"title": "hola"})
        project.upsert_variant(OTHER, "item_2", "article", "default", {"title": "new"})
        result = cache.sync()
        changed = [record for what, record in got.of(ITEM) if what == "changed"]
        assert changed, "the item changed and must be signalled"
        last = changed[-1]
        stored = cache.entry(ITEM)
        assert stored is not None and last.raw == stored.raw
        assert set(last.fields["title"]) == {"default", "es-ES"}
        assert "sys" in last.raw and last.content_type == "article"
        assert result.entries.added == 1 and result.entries.updated == 1


# -- Contentful: the catch-up delta of a resumed sync ------------------------------------------


def test_resumed_sync_signals_the_catch_up_version(emulator: Any, store_path: Path,
                                                   events: list[Events]) -> None:
    space = emulator.space
    for n in range(6):
        space.publish_entry(f"e{n}", "article", article(f"v1 {n}"))
    with make_cache(emulator, store_path, limit=2, http=POLICY) as cache:
        got = Events(cache)
        events.append(got)
        break_after(emulator, 2, lambda path: path.endswith("/sync"))  # page 2 fails
        with pytest.raises(SyncError):
            cache.sync()
        emulator.faults.clear()
        space.publish_entry("e5", "article", article("v2 5"))  # not delivered yet
        space.publish_entry("e0", "article", article("v2 0"))  # delivered before the break
        got.clear()
        result = cache.sync()
        assert_converged(cache, space)
        for entry_id in ("e0", "e5"):
            last = [r for what, r in got.of(entry_id) if what == "changed"][-1]
            assert last.raw == cache.entry(entry_id).raw, entry_id
            assert last.field("title").startswith("v2")
        pages = [c.page for c in got.change_sets]
        assert pages == list(range(1, len(pages) + 1)) and len(pages) >= 3
        assert got.progress == pages
        # e0 was stored before this call (updated); e5 was not (added, once, net).
        assert result.entries.updated == 1
        assert result.entries.added == 4


def test_ledger_catches_a_stale_signal(emulator: Any, store_path: Path) -> None:
    """The agreement check used by every convergence test can fail."""
    emulator.space.publish_entry("e1", "article", article("one"))
    with make_cache(emulator, store_path) as cache:
        ledger = SignalLedger(cache)
        with ledger:
            cache.sync()
            ledger.assert_agrees()
            emulator.space.publish_entry("e1", "article", article("two"))
            cache.sync()
            stale = [r for r in [ledger.last[("Entry", "e1")]]]
            emulator.space.publish_entry("e1", "article", article("three"))
            cache.sync()
            ledger.last[("Entry", "e1")] = stale[0]
            with pytest.raises(AssertionError, match="stale"):
                ledger.assert_agrees()


# -- recovery without help -----------------------------------------------------------------


def test_pagination_token_refused_mid_initial_sync_recovers_in_the_same_call(
        emulator: Any, store_path: Path) -> None:
    space = emulator.space
    for n in range(9):
        space.publish_entry(f"e{n}", "article", article(f"t{n}"))
    with make_cache(emulator, store_path, limit=2, http=POLICY) as cache:
        sync_requests: list[dict[str, list[str]]] = []

        def refuse_third(path: str, query: dict[str, list[str]]) -> None:
            if path.endswith("/sync"):
                sync_requests.append(query)
                if len(sync_requests) == 3:  # pages 1 and 2 committed; page 3's token refused
                    emulator.faults.invalidate_tokens_before_now()

        emulator.faults.on_request = refuse_third
        space.delete_entry("e8")  # gone from the space before the restart; must not linger
        result = cache.sync()
        assert result.initial
        assert_converged(cache, space)
        assert sum(1 for q in sync_requests if q.get("initial") == ["true"]) == 2


def test_resumed_rebuild_runs_the_catch_up_delta(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    ids = [f"r{i:02d}" for i in range(20)]
    for i in ids:
        space.publish_entry(i, "article", article(f"T {i}"))
    with make_cache(emulator, store_path, limit=5, http=POLICY) as cache:
        cache.sync()
        emulator.faults.invalidate_tokens_before_now()
        break_after(emulator, 3)  # the rejected delta, rebuild pages 1, 2: break page 3
        with pytest.raises(SyncError):
            cache.sync()
        emulator.faults.clear()
        space.publish_entry("late", "article", article("made during the interruption"))
        space.publish_entry(ids[1], "article", article("edited during the interruption"))
        result = cache.sync()
        assert result.initial
        assert cache.entry("late") is not None
        assert cache.entry(ids[1]).field("title") == "edited during the interruption"
        assert_converged(cache, space)


# -- the rebuild's shadow tables and token -----------------------------------------------------


def test_fresh_rebuild_clears_an_interrupted_rebuilds_rows(emulator: Any,
                                                           store_path: Path) -> None:
    space = emulator.space
    ids = [f"r{i:02d}" for i in range(20)]
    for i in ids:
        space.publish_entry(i, "article", article(f"T {i}"))
    with make_cache(emulator, store_path, limit=5, http=POLICY) as cache:
        cache.sync()
        break_after(emulator, 3)  # rebuild pages 1-2 kept aside, page 3 fails
        with pytest.raises(SyncError):
            cache.sync(full=True)
        emulator.faults.clear()
        space.delete_entry(ids[0])  # held only by the interrupted rebuild's shadow rows now
        result = cache.sync(full=True)  # starts afresh: the shadow rows must go first
        assert cache.entry(ids[0]) is None
        assert result.entries.deleted == 1
        assert_converged(cache, space)


def test_rebuild_stores_its_sync_token(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    for n in range(7):
        space.publish_entry(f"e{n}", "article", article(f"t{n}"))
    with make_cache(emulator, store_path, limit=3) as cache:
        cache.sync()
        emulator.faults.invalidate_tokens_before_now()  # the stored token is refused now
        assert cache.sync().initial  # the rebuild
        seen: list[dict[str, list[str]]] = []
        emulator.faults.on_request = lambda path, query: seen.append(query) \
            if path.endswith("/sync") else None
        space.publish_entry("e1", "article", article("after the rebuild"))
        result = cache.sync()
        assert "initial" not in seen[0] and "sync_token" in seen[0]
        assert not result.initial and result.entries.updated == 1 and result.pages == 1
        assert_converged(cache, space)


# -- pages: the later item wins, per-locale republish replaces ------------------------------------


def test_contentstack_republish_drops_fields_the_new_version_removed(store_path: Path) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us", "fr-fr"])
    stack.publish_entry("e1", "blog", "en-us", {"title": "one", "summary": "gone soon"})
    stack.publish_entry("e1", "blog", "fr-fr", {"title": "un", "summary": "reste"})
    with Emulator(stack, access_token=TOKEN) as emulator, \
            _stack_cache(emulator, store_path) as cache:
        cache.sync()
        assert cache.entry("e1").fields["summary"] == {"en-us": "gone soon", "fr-fr": "reste"}
        stack.publish_entry("e1", "blog", "en-us", {"title": "one, v2"})
        cache.sync()
        fields = cache.entry("e1").fields
        assert fields["summary"] == {"fr-fr": "reste"}
        assert fields["title"] == {"en-us": "one, v2", "fr-fr": "un"}
