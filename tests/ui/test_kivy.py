"""Kivy adapters (localcache/kivy.py): events on the main thread, a RecycleView's data in step.

Headless (tests/ui/conftest.py): no window; Kivy's Clock is driven here with ``Clock.tick()``,
on the test's thread, which is therefore Kivy's main thread. Syncs run on a worker thread or
the AutoSync thread, against the emulator over loopback, into a real SQLite store.

A real ``RecycleView`` cannot be built without a window (``Widget.__init__`` asks for one and
exits the process when there is none), so ``attach`` is tested here with :class:`ViewStandIn`,
an EventDispatcher with the same ``data = ListProperty()`` a RecycleView's data model holds;
``test_a_real_recycleview_follows_the_store`` runs the real widget under ``xvfb-run`` when
available.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kivy")

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.properties import ListProperty
from support import make_cache

from localcache import Cache, HttpPolicy, QueryError, SyncError, signals
from localcache.emulator import Locale, Space
from localcache.kivy import CacheEvents, RecycleData

EVENTS = ("on_sync_started", "on_sync_progress", "on_sync_finished", "on_sync_failed",
          "on_sync_status", "on_changes")


class ViewStandIn(EventDispatcher):  # type: ignore[misc]
    """What a RecycleView's ``data`` is: a ListProperty (the real widget needs a window).
    Records the operation behind every change the view would be told about."""

    data = ListProperty()

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, ...]] = []
        self.bind(data=lambda view, value: self.ops.append(tuple(value.last_op)))


@pytest.fixture
def space() -> Space:
    """Overrides tests/conftest.py's: articles with a rank, persons; de-DE falls back."""
    space = Space("kivyspace", "master", locales=[
        Locale("en-US", default=True), Locale("de-DE", fallback="en-US")])
    space.add_content_type("article", name="Article", fields=[
        {"id": "title", "type": "Symbol", "localized": True},
        {"id": "rank", "type": "Integer"},
    ], display_field="title")
    space.add_content_type("person", name="Person", fields=[
        {"id": "title", "type": "Symbol", "localized": True}], display_field="title")
    return space


@pytest.fixture
def cache(emulator: Any, tmp_path: Path) -> Iterator[Cache]:
    with make_cache(emulator, tmp_path / "store.sqlite3", limit=2) as opened:  # pages of 2
        yield opened


def article(title: str | None, rank: int | None, de: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if title is not None:
        fields["title"] = {"en-US": title, **({"de-DE": de} if de is not None else {})}
    if rank is not None:
        fields["rank"] = {"en-US": rank}
    return fields


def tick_until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the Clock never brought the expected state"
        Clock.tick()
        time.sleep(0.001)


def settle(*lists: RecycleData) -> None:
    """Tick until every list has loaded and what was queued has run."""
    tick_until(lambda: not any(rd.loading for rd in lists))
    for _ in range(3):
        Clock.tick()


def sync_on_worker(cache: Cache) -> threading.Thread:
    """A sync on another thread, finished when this returns: its signals are all sent."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            cache.sync()
        except SyncError as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="test-sync-worker")
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    return worker


def expected_rows(cache: Cache, rd: RecycleData, **query: Any) -> list[dict[str, Any]]:
    locale = query.get("locale")
    return [{"id": r.id, **{name: r.field(name, locale) for name in rd.fields}}
            for r in cache.entries(**query)]


# -- CacheEvents ------------------------------------------------------------------------------


def test_events_run_on_the_main_thread_in_signal_order(emulator: Any, space: Space,
                                                       cache: Cache, tmp_path: Path) -> None:
    for number in range(5):
        space.publish_entry(f"e{number}", "article", article(f"t{number}", number))
    events = CacheEvents(cache)
    seen: list[tuple[str, threading.Thread, tuple[Any, ...]]] = []
    for name in EVENTS:
        events.bind(**{name: lambda dispatcher, *args, name=name: seen.append(
            (name, threading.current_thread(), args))})
    sent_on: list[threading.Thread] = []

    def sent(sender: object, **kwargs: Any) -> None:
        sent_on.append(threading.current_thread())

    try:
        with signals.changes_committed.connected_to(sent, sender=cache):
            worker = sync_on_worker(cache)
        assert seen == [], "an event ran before the Clock did: it did not hop threads"
        assert sent_on and set(sent_on) == {worker}
        tick_until(lambda: any(name == "on_sync_finished" for name, _, _ in seen))
        names = [name for name, _, _ in seen]
        assert names[0] == "on_sync_started" and names[-1] == "on_sync_finished"
        assert seen[0][2] == (True,) and not events.syncing
        progress = [args for name, _, args in seen if name == "on_sync_progress"]
        changes = [args[0] for name, _, args in seen if name == "on_changes"]
        assert [page for page, _, _ in progress] == [c.page for c in changes]
        assert sorted(i for c in changes for i in c.entries_added) == [f"e{n}" for n in range(5)]
        assert seen[-1][2][0].pages == len(changes)

        emulator.faults.server_error(times=1_000, status=502)
        with make_cache(emulator, tmp_path / "failing.sqlite3",
                        http=HttpPolicy(max_attempts=1)) as failing:
            failing_events = CacheEvents(failing)
            failing_events.bind(on_sync_failed=lambda d, error: seen.append(
                ("failed", threading.current_thread(), (error,))))
            sync_on_worker(failing)
            tick_until(lambda: seen[-1][0] == "failed")
            assert isinstance(seen[-1][2][0], SyncError)
            failing_events.close()
        emulator.faults.clear()

        space.publish_entry("e9", "article", article("t9", 9))
        auto = cache.start_auto_sync(interval=3600)
        tick_until(lambda: events.status is not None and events.status.state == "idle"
                   and events.status.last_result is not None)
        auto.stop()
        tick_until(lambda: events.status.state == "stopped")
        states = [args[0].state for name, _, args in seen if name == "on_sync_status"]
        assert states[0] == "syncing" and states[-1] == "stopped" and "idle" in states
        assert cache.entry("e9") is not None
    finally:
        events.close()
    threads = {thread for _, thread, _ in seen}
    assert threads == {threading.main_thread()}, threads
    assert {name for name, _, _ in seen} >= set(EVENTS) - {"on_sync_failed"} | {"failed"}


def receivers(cache: Cache) -> int:
    return sum(len(list(getattr(signals, name).receivers_for(cache)))
               for name in signals.__all__ if name != "ChangeSet")


def test_closed_events_dispatch_nothing(space: Space, cache: Cache) -> None:
    before = receivers(cache)
    events = CacheEvents(cache)
    assert receivers(cache) == before + len(EVENTS)
    seen: list[str] = []
    events.bind(on_sync_started=lambda *a: seen.append("started"),
                on_changes=lambda *a: seen.append("changes"))
    space.publish_entry("e1", "article", article("one", 1))
    sync_on_worker(cache)
    events.close()  # after the signals were queued, before the Clock ran: dropped too
    events.close()
    space.publish_entry("e2", "article", article("two", 2))
    sync_on_worker(cache)
    for _ in range(5):
        Clock.tick()
    assert seen == []
    assert receivers(cache) == before


# -- RecycleData ------------------------------------------------------------------------------

QUERIES: list[dict[str, Any]] = [
    {"content_type": "article", "order_by": ["-rank"], "locale": "de-DE"},
    {"content_type": "article", "where": {"rank": {"gte": 2}}, "order_by": ["title", "-sys.id"]},
    {"order_by": ["-title"], "locale": "de-DE"},
    {},
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_data_is_the_query_after_random_background_syncs(space: Space, cache: Cache,
                                                         seed: int) -> None:
    rng = random.Random(seed)
    pool = [f"e{number:02d}" for number in range(16)]
    kinds: dict[str, str] = {}

    def publish(entry_id: str) -> None:
        if kinds.get(entry_id, "article") == "person" or (
                entry_id not in kinds and rng.random() < 0.2):
            kinds[entry_id] = "person"
            space.publish_entry(entry_id, "person", {"title": {"en-US": rng.choice("xyz")}})
            return
        kinds[entry_id] = "article"
        title = rng.choice([None, "a", "b", "ab", "B", "c"])
        de = rng.choice([None, None, "ä", "d", "b"])  # None: de-DE falls back to en-US
        space.publish_entry(entry_id, "article",
                            article(title, rng.choice([None, 0, 1, 2, 3, 4]), de))

    for entry_id in pool[:10]:
        publish(entry_id)
    cache.sync()
    lists = [RecycleData(cache, fields=("title", "rank"), batch=2, frame_budget=0.0, **q)
             for q in QUERIES]
    view = ViewStandIn()
    lists[-1].attach(view)
    identities = [id(rd.data) for rd in lists]
    view_list = view.data
    Clock.tick()  # one batch each: the rounds begin while the lists are still loading
    try:
        for _ in range(20):
            for _ in range(rng.randint(1, 5)):
                entry_id, roll = rng.choice(pool), rng.random()
                if roll < 0.6 or entry_id not in kinds:
                    publish(entry_id)  # an edit, a new entry, or one re-created
                elif roll < 0.8:
                    space.delete_entry(entry_id)
                    del kinds[entry_id]
                elif entry_id in space.published_entries():
                    space.unpublish_entry(entry_id)
            sync_on_worker(cache)
            if rng.random() < 0.5:
                Clock.tick()  # the ChangeSets run; some lists may still be loading
                for rd, query in zip(lists, QUERIES, strict=True):
                    expected = expected_rows(cache, rd, **query)
                    rows = list(rd.data)
                    assert rows == (expected[:len(rows)] if rd.loading else expected), query
            else:
                settle(*lists)
                for rd, query in zip(lists, QUERIES, strict=True):
                    assert list(rd.data) == expected_rows(cache, rd, **query), query
            assert [id(rd.data) for rd in lists] == identities
            assert view.data is view_list and lists[-1].data is view_list
        settle(*lists)
        for rd, query in zip(lists, QUERIES, strict=True):
            assert list(rd.data) == expected_rows(cache, rd, **query), query
            assert not rd.loading
    finally:
        for rd in lists:
            rd.close()


def test_one_changed_record_is_one_item_edit_of_the_same_list(space: Space,
                                                              cache: Cache) -> None:
    for number in range(8):
        space.publish_entry(f"e{number}", "article", article(f"t{number}", number))
    cache.sync()
    rd = RecycleData(cache, "article", order_by="rank", fields=("title", "rank"))
    view = ViewStandIn()
    original = view.data
    rd.attach(view)
    settle(rd)
    assert rd.data is original and view.data is original
    assert [row["id"] for row in view.data] == [f"e{n}" for n in range(8)]
    auto = cache.start_auto_sync(interval=3600)  # the background thread syncs from now on
    try:
        tick_until(lambda: auto.status.state == "idle" and auto.status.last_result is not None)
        def synced(edit: Callable[[], object]) -> list[tuple[Any, ...]]:
            view.ops.clear()
            before = auto.status.last_result
            edit()
            auto.sync_now()
            tick_until(lambda: auto.status.state == "idle"
                       and auto.status.last_result is not before)
            settle(rd)
            assert view.data is original and rd.data is original
            assert list(view.data) == expected_rows(cache, rd, content_type="article",
                                                    order_by="rank")
            return list(view.ops)

        ops = synced(lambda: space.publish_entry("e3", "article", article("T3", 3)))
        assert ops == [("__setitem__", 3)] and view.data[3]["title"] == "T3"
        ops = synced(lambda: space.publish_entry("e1", "article", article("t1", 5)))
        assert [op[0] for op in ops] == ["pop", "insert"]  # moved: no other row rewritten
        ops = synced(lambda: space.delete_entry("e6"))
        assert [op[0] for op in ops] == ["pop"]
        ops = synced(lambda: space.publish_entry("e9", "article", article("t9", 0)))
        assert ops == [("insert", 1)] and view.data[1]["id"] == "e9"  # ties: by id
        ops = synced(lambda: space.publish_entry("p1", "person", {"title": {"en-US": "P"}}))
        assert ops == []
    finally:
        auto.stop()
        rd.close()


def test_loading_is_spread_over_frames(space: Space, cache: Cache) -> None:
    for number in range(25):
        space.publish_entry(f"e{number:02d}", "article", article(f"t{number}", number))
    cache.sync()
    rd = RecycleData(cache, "article", batch=10, frame_budget=0.0)
    assert rd.loading and list(rd.data) == []  # nothing read before the first frame
    lengths = []
    while rd.loading and len(lengths) < 100:
        Clock.tick()
        lengths.append(len(rd.data))
    assert lengths == [10, 20, 25]
    assert [row["id"] for row in rd.data] == [f"e{n:02d}" for n in range(25)]
    rd.close()
    fast = RecycleData(cache, "article", batch=10)  # the default budget: more per frame
    settle(fast)
    assert len(fast.data) == 25
    fast.close()
    # Every read outlasts a budget this small, so the batch grows while that pays: whatever
    # sizes the timings pick, the rows are the query's.
    query: dict[str, Any] = {"content_type": "article", "order_by": ["-rank"],
                             "locale": "de-DE"}
    grown = RecycleData(cache, batch=2, frame_budget=1e-9, fields=("title", "rank"), **query)
    frames = 0
    while grown.loading and frames < 100:
        Clock.tick()
        frames += 1
    assert list(grown.data) == expected_rows(cache, grown, **query)
    assert frames <= 13  # 25 rows in reads of 2 or more
    grown.close()


def test_set_locale_and_reset_edit_the_list_in_place(space: Space, cache: Cache) -> None:
    space.publish_entry("e1", "article", article("one", 2, de="eins"))
    space.publish_entry("e2", "article", article("two", 1))
    space.publish_entry("p1", "person", {"title": {"en-US": "Ann"}})
    cache.sync()
    rd = RecycleData(cache, "article", order_by=["title"])
    view = ViewStandIn()
    rd.attach(view)
    original = view.data
    settle(rd)
    assert list(view.data) == [{"id": "e1", "title": "one"}, {"id": "e2", "title": "two"}]
    rd.set_locale("de-DE")
    settle(rd)
    assert rd.locale == "de-DE" and view.data is original
    assert list(view.data) == [{"id": "e1", "title": "eins"}, {"id": "e2", "title": "two"}]
    rd.reset(content_type="person", fields=("title", "missing"))
    settle(rd)
    assert list(view.data) == [{"id": "p1", "title": "Ann", "missing": None}]
    with pytest.raises(QueryError, match="id"):
        rd.reset(fields=("id",))
    with pytest.raises(QueryError, match="near"):
        rd.reset(where={"title": {"near": 1}})
    assert rd.fields == ("title", "missing") and view.data is original
    rd.close()


REAL_VIEW = """
import os, threading
from kivy.base import EventLoop
from kivy.uix.label import Label
from kivy.uix.recycleboxlayout import RecycleBoxLayout
from kivy.uix.recycleview import RecycleView
from kivy.uix.recycleview.views import RecycleDataViewBehavior
from localcache import Cache, Contentful
from localcache.emulator import Emulator, Locale, Space
from localcache.kivy import RecycleData


class Row(RecycleDataViewBehavior, Label):
    def refresh_view_attrs(self, rv, index, data):
        self.text = data["title"] or "-"
        return super().refresh_view_attrs(rv, index, {})


def frames(count=20):
    for _ in range(count):
        EventLoop.idle()


def shown():
    return sorted(child.text for child in layout.children)


space = Space("real", "master", locales=[Locale("en-US", default=True),
                                         Locale("de-DE", fallback="en-US")])
space.add_content_type("article", name="Article", fields=[
    {"id": "title", "type": "Symbol", "localized": True}], display_field="title")
for number in range(6):
    space.publish_entry(f"e{number}", "article", {"title": {"en-US": f"t{number}"}})
with Emulator(space, access_token="t") as emulator, Cache(
        Contentful("real", "t", base_url=emulator.base_url, limit=2),
        path=os.environ["STORE"]) as cache:
    cache.sync()
    view = RecycleView()
    layout = RecycleBoxLayout(orientation="vertical", default_size=(None, 30),
                              default_size_hint=(1, None), size_hint_y=None)
    layout.bind(minimum_height=layout.setter("height"))
    view.add_widget(layout)
    view.viewclass = Row  # once the layout is there, which keeps it
    EventLoop.window.add_widget(view)
    original = view.data
    rd = RecycleData(cache, "article", order_by="-title")
    rd.attach(view)
    frames()
    assert shown() == [f"t{n}" for n in range(6)], shown()
    space.publish_entry("e2", "article", {"title": {"en-US": "changed", "de-DE": "anders"}})
    space.publish_entry("e0", "article", {"title": {"en-US": "z first"}})
    space.delete_entry("e4")
    space.publish_entry("e9", "article", {"title": {"en-US": "new"}})
    worker = threading.Thread(target=cache.sync)
    worker.start()
    worker.join()
    frames()
    expected = [r.field("title") for r in cache.entries("article", order_by="-title")]
    assert [row["title"] for row in view.data] == expected, list(view.data)
    assert shown() == sorted(expected), shown()
    rd.set_locale("de-DE")
    frames()
    assert "anders" in shown() and rd.data is original and view.data is original
    rd.close()
print("RECYCLEVIEW-OK")
"""


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (Debian xvfb)")
def test_a_real_recycleview_follows_the_store(tmp_path: Path) -> None:
    """The real widget, in a window on a virtual display: after attach() and a background
    sync that changes, moves, deletes and adds rows, the row widgets show the query, and the
    view's data list is still the one it had."""
    env = {**os.environ, "KIVY_WINDOW": "sdl2", "KIVY_HOME": str(tmp_path / "kivy"),
           "STORE": str(tmp_path / "real.sqlite3"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 640x480x24", sys.executable,
                           "-c", REAL_VIEW], env=env, capture_output=True, text=True,
                          timeout=120)
    if "Unable to find any valuable Window provider" in done.stderr + done.stdout:
        pytest.skip("no usable OpenGL under xvfb (see docs/ui-kivy.md for the packages)")
    assert "RECYCLEVIEW-OK" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
