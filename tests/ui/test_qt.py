"""The Qt adapters (localcache/qt.py): signals on the GUI thread, live list models.

Real emulator over loopback, real SQLite; syncs run on other threads (a worker thread, an
AutoSync) while this thread is the GUI thread and runs Qt's event loop. The models are checked
against ``cache.entries`` for the same query, and by Qt's own ``QAbstractItemModelTester``.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QThread,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtTest import QAbstractItemModelTester
from PySide6.QtWidgets import QApplication

from localcache import Cache, Contentful, HttpPolicy, QueryError, signals
from localcache.emulator import Emulator, Locale, Space, generate_space
from localcache.qt import (
    ID_ROLE,
    RECORD_ROLE,
    AssetListModel,
    EntryListModel,
    QtSignals,
)

TOKEN = "qt-token"
SIGNALS = ("sync_started", "sync_progress", "sync_finished", "sync_failed",
           "sync_status_changed", "changes_committed", "entry_changed", "entry_deleted",
           "asset_changed", "asset_deleted")
QT_SIGNALS = ("syncStarted", "syncProgress", "syncFinished", "syncFailed", "syncStatusChanged",
              "changesCommitted", "entryChanged", "entryDeleted", "assetChanged", "assetDeleted")


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def qapp() -> QCoreApplication:
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QCoreApplication)
    return app


@pytest.fixture(autouse=True)
def slot_errors(qapp: QCoreApplication, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An exception in a slot (ours or the model's) fails the test: PySide6 only prints it,
    through sys.excepthook."""
    raised: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, tb: raised.append(error))
    yield
    assert not raised, raised


@pytest.fixture
def qt_warnings(qapp: QCoreApplication) -> Iterator[list[str]]:
    """Qt's warnings while the test runs (QAbstractItemModelTester reports through them)."""
    caught: list[str] = []

    def handler(kind: QtMsgType, context: Any, message: str) -> None:
        if kind != QtMsgType.QtDebugMsg:
            caught.append(message)

    previous = qInstallMessageHandler(handler)
    yield caught
    qInstallMessageHandler(previous)


def blog() -> Space:
    space = Space("qtspace", "master", locales=[
        Locale("en-US", default=True), Locale("de-DE", fallback="en-US")])
    space.add_content_type("article", name="Article", fields=[
        {"id": "title", "type": "Symbol", "localized": True},
        {"id": "rank", "type": "Integer"},
        {"id": "author", "type": "Link", "linkType": "Entry"},
    ], display_field="title")
    space.add_content_type("person", name="Person", fields=[
        {"id": "name", "type": "Symbol"}], display_field="name")
    return space


def article(title: str | None, rank: int | None, de: str | None = None,
            author: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if title is not None:
        fields["title"] = {"en-US": title} | ({"de-DE": de} if de is not None else {})
    if rank is not None:
        fields["rank"] = {"en-US": rank}
    if author is not None:
        fields["author"] = {"en-US": {"sys": {"type": "Link", "linkType": "Entry",
                                              "id": author}}}
    return fields


def open_cache(emu: Emulator, path: Path, **provider: Any) -> Cache:
    return Cache(Contentful(emu.space.space_id, TOKEN, base_url=emu.base_url, **provider),
                 path=path)


def settle(app: QCoreApplication, until: Callable[[], bool] = lambda: True,
           timeout: float = 10.0) -> None:
    """Run Qt's event loop until ``until()`` holds and no event is left to deliver."""
    deadline = time.monotonic() + timeout
    while True:
        QCoreApplication.sendPostedEvents()
        app.processEvents()
        if until():
            QCoreApplication.sendPostedEvents()
            app.processEvents()
            return
        assert time.monotonic() < deadline, "timed out waiting for Qt"
        time.sleep(0.005)


def sync_in_background(app: QCoreApplication, cache: Cache, *models: Any,
                       between: Callable[[], object] | None = None) -> None:
    """``cache.sync()`` on a worker thread while this thread runs the event loop (so pages
    are followed while later ones commit), then, with ``between``, that edit and a second
    sync on the same thread; then until every queued signal is delivered and ``models`` have
    applied every page they received."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            cache.sync()
            if between is not None:
                between()
                cache.sync()
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)

    worker = threading.Thread(target=run, name="test-sync")
    worker.start()
    settle(app, lambda: not worker.is_alive() and not any(m.pending_changes for m in models))
    worker.join()
    settle(app, lambda: not any(m.pending_changes for m in models))
    assert not failure, failure


def rows(model: EntryListModel | AssetListModel) -> list[str]:
    return [model.data(model.index(row, 0), ID_ROLE) for row in range(model.rowCount())]


class Notifications:
    """Every row notification a model sent, by kind."""

    KINDS = ("rowsInserted", "rowsRemoved", "rowsMoved", "dataChanged", "modelReset",
             "modelAboutToBeReset", "layoutChanged")

    def __init__(self, model: QObject) -> None:
        self.seen: list[tuple[str, tuple[Any, ...]]] = []
        self.changed: list[str] = []  # the ids dataChanged named, as it was sent
        self.threads: set[str] = set()
        for kind in self.KINDS:
            getattr(model, kind).connect(self._recorder(kind), Qt.ConnectionType.DirectConnection)

    def _recorder(self, kind: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            on_gui = QThread.currentThread() == QCoreApplication.instance().thread()  # type: ignore[union-attr]
            self.threads.add(threading.current_thread().name if on_gui else "not GUI")
            self.seen.append((kind, tuple(a.row() if isinstance(a, QModelIndex) else a
                                          for a in args)))
            if kind == "dataChanged":
                first, last = args[0], args[1]
                self.changed += [first.model().data(first.siblingAtRow(row), ID_ROLE)
                                 for row in range(first.row(), last.row() + 1)]
        return record

    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.seen}


# -- QtSignals ---------------------------------------------------------------------------------


def test_every_signal_arrives_on_the_gui_thread(qapp: QCoreApplication, tmp_path: Path) -> None:
    space = blog()
    space.publish_entry("a1", "article", article("One", 1))
    space.publish_entry("a2", "article", article("Two", 2))
    space.publish_asset("img", {"title": {"en-US": "Image"}})
    with Emulator(space, access_token=TOKEN) as emu, open_cache(
            emu, tmp_path / "s.sqlite3", http=HttpPolicy(max_attempts=1)) as cache:
        qt_signals = QtSignals(cache)
        arrived: dict[str, list[str]] = {name: [] for name in QT_SIGNALS}
        for name in QT_SIGNALS:
            def slot(*args: Any, name: str = name) -> None:
                on_gui = QThread.currentThread() == qapp.thread()
                arrived[name].append(threading.current_thread().name if on_gui else "not GUI")
            # Direct: the slot runs where the signal is emitted (a plain function's default
            # connection would queue it to the GUI thread and hide a wrong thread).
            getattr(qt_signals, name).connect(slot, Qt.ConnectionType.DirectConnection)
        states: list[str] = []
        qt_signals.syncStatusChanged.connect(lambda status: states.append(status.state))
        sent_on: set[str] = set()  # where blinker ran them: the syncing threads

        def sent(sender: object, **kwargs: Any) -> None:
            sent_on.add(threading.current_thread().name)

        for name in SIGNALS:
            getattr(signals, name).connect(sent, sender=cache, weak=False)
        model = EntryListModel(cache, "article", order_by="-rank")
        notes = Notifications(model)
        try:
            auto = cache.start_auto_sync(interval=60.0)
            settle(qapp, lambda: bool(arrived["syncFinished"]))
            space.publish_entry("a1", "article", article("One", 3))
            space.delete_entry("a2")
            space.publish_asset("img", {"title": {"en-US": "Picture"}})
            auto.sync_now()
            settle(qapp, lambda: len(arrived["syncFinished"]) >= 2)
            space.publish_entry("a3", "article", article("Three", 0))
            space.delete_asset("img")
            sync_in_background(qapp, cache)  # a plain worker thread too
            space.publish_entry("a4", "article", article("Four", 4))
            emu.faults.server_error(times=5, status=502)
            auto.sync_now()
            settle(qapp, lambda: bool(arrived["syncFailed"]))
            emu.faults.clear()
            auto.stop()
            settle(qapp, lambda: "stopped" in states)
        finally:
            for name in SIGNALS:
                getattr(signals, name).disconnect(sent)
        assert all(arrived[name] for name in QT_SIGNALS), {
            name: len(got) for name, got in arrived.items()}
        assert {t for got in arrived.values() for t in got} == {"MainThread"}
        assert notes.threads == {"MainThread"} and notes.seen
        assert sent_on >= {"localcache-autosync", "test-sync"}  # the hop was real
        assert rows(model) == [r.id for r in cache.entries("article", order_by="-rank")]


# -- the entry model against the store ---------------------------------------------------------


QUERIES = [
    {"content_type": "article"},
    {"content_type": "article", "order_by": ["-rank", "title"], "locale": "de-DE"},
    {"content_type": "article", "where": {"rank": {"gte": 2}}, "order_by": ["title"],
     "locale": "de-DE"},
]


@pytest.mark.parametrize("slice_ids", [32, 1], ids=["at-once", "sliced-read-ahead"])
@pytest.mark.parametrize("query", QUERIES, ids=["by-id", "rank-desc-de", "filtered-de"])
def test_model_rows_follow_random_changes(qapp: QCoreApplication, qt_warnings: list[str],
                                          tmp_path: Path, query: dict[str, Any],
                                          slice_ids: int) -> None:
    """Pages of 3 records; with ``slice_ids=1`` every page of 2 or more is cut into slices
    whose records a reader thread reads ahead, and two syncs often commit before the GUI
    thread has applied the first one's pages (the same record changed in both)."""
    rng = random.Random(f"qt-{sorted(query)}-{query.get('locale')}-{slice_ids}")
    space = blog()
    ids = [f"e{n:02d}" for n in range(16)]
    people = ["p1", "p2"]
    for person in people:
        space.publish_entry(person, "person", {"name": {"en-US": person.upper()}})

    def random_article() -> dict[str, Any]:
        return article(rng.choice([None, "apple", "Berry", "cherry", "date", "elder"]),
                       rng.choice([None, 0, 1, 2, 3, 4]),
                       de=rng.choice([None, "Apfel", "beere", "Kirsche"]),
                       author=rng.choice([None, *people]))

    def edit() -> None:
        for _ in range(rng.randint(1, 6)):
            roll, entry_id = rng.random(), rng.choice(ids)
            published = space.published_entries()
            if roll < 0.55:  # a new entry, an edit, or a re-creation after a deletion
                space.publish_entry(entry_id, "article", random_article())
            elif roll < 0.7 and entry_id in published:
                space.delete_entry(entry_id)
            elif roll < 0.8 and entry_id in published:
                space.unpublish_entry(entry_id)
            else:  # the linked person changes: the articles naming it are affected
                person = rng.choice(people)
                space.publish_entry(person, "person", {"name": {"en-US": f"{rng.random()}"}})

    for entry_id in ids[:8]:
        space.publish_entry(entry_id, "article", random_article())
    with Emulator(space, access_token=TOKEN) as emu, open_cache(
            emu, tmp_path / "s.sqlite3", limit=3) as cache:
        cache.sync()
        model = EntryListModel(cache, batch=3, **query)
        model.SLICE_IDS = slice_ids  # type: ignore[misc]
        tester = QAbstractItemModelTester(
            model, QAbstractItemModelTester.FailureReportingMode.Warning)
        notes = Notifications(model)
        for _ in range(20):
            edit()
            sync_in_background(qapp, cache, model, between=edit if rng.random() < 0.5 else None)
            check_rows(cache, model, query)
            if rng.random() < 0.4:
                model.fetchMore(QModelIndex())
                check_rows(cache, model, query)
        model.fetch_all()
        check_rows(cache, model, query)
        assert not model.canFetchMore(QModelIndex())
        assert "modelReset" not in notes.kinds()
        del tester
    assert not [w for w in qt_warnings if "FAIL" in w], qt_warnings


def check_rows(cache: Cache, model: EntryListModel, query: dict[str, Any]) -> None:
    expected = cache.entries(**query)
    shown = rows(model)
    if model.canFetchMore(QModelIndex()):
        expected = expected[:len(shown)]
    assert shown == [r.id for r in expected]
    locale = query.get("locale")
    for row, record in enumerate(expected):
        index = model.index(row, 0)
        assert model.data(index, Qt.ItemDataRole.DisplayRole) == (
            record.field("title", locale) or record.id)
        assert model.data(index, RECORD_ROLE) == record


def test_a_changeset_moves_changes_and_never_resets(qapp: QCoreApplication,
                                                    tmp_path: Path) -> None:
    space = blog()
    space.publish_entry("p1", "person", {"name": {"en-US": "Ann"}})
    for n in range(6):
        space.publish_entry(f"e{n}", "article", article(f"t{n}", n, author="p1" if n == 5
                                                        else None))
    with Emulator(space, access_token=TOKEN) as emu, open_cache(
            emu, tmp_path / "s.sqlite3") as cache:
        cache.sync()
        model = EntryListModel(cache, "article", order_by="rank")
        assert rows(model) == ["e0", "e1", "e2", "e3", "e4", "e5"]
        notes = Notifications(model)
        moved_down = QPersistentModelIndex(model.index(0, 0))   # e0: rank 0 → 9
        moved_up = QPersistentModelIndex(model.index(4, 0))     # e4: rank 4 → -1
        space.publish_entry("e0", "article", article("t0", 9))
        space.publish_entry("e4", "article", article("t4", -1))
        space.publish_entry("e2", "article", article("T2", 2))  # edited in place
        space.publish_entry("p1", "person", {"name": {"en-US": "Bob"}})  # e5 links to p1
        sync_in_background(qapp, cache)
        assert rows(model) == ["e4", "e1", "e2", "e3", "e5", "e0"]
        assert model.data(moved_down, ID_ROLE) == "e0" and moved_down.row() == 5
        assert model.data(moved_up, ID_ROLE) == "e4" and moved_up.row() == 0
        assert notes.kinds() == {"rowsMoved", "dataChanged"}, notes.seen
        assert sorted(notes.changed) == ["e0", "e2", "e4", "e5"], notes.seen
        assert model.data(model.index(2, 0)) == "T2"


def test_a_new_store_opens_with_one_batch(qapp: QCoreApplication, tmp_path: Path) -> None:
    space = generate_space(entries=2_000, assets=0, locales=("en-US",), field_bytes=40)
    with Emulator(space, access_token=TOKEN) as emu, Cache(
            Contentful(space.space_id, TOKEN, base_url=emu.base_url, limit=1000),
            path=tmp_path / "s.sqlite3") as cache:
        cache.sync()
        model = EntryListModel(cache, "article")
        assert model.rowCount() == 200 and model.canFetchMore(QModelIndex())
        notes = Notifications(model)
        model.fetchMore(QModelIndex())
        assert model.rowCount() == 400
        assert notes.seen == [("rowsInserted", (-1, 200, 399))]
        articles = cache.entries("article", limit=400)
        assert rows(model) == [r.id for r in articles]
        title = cache.content_type("article").display_field  # type: ignore[union-attr]
        assert model.data(model.index(7, 0)) == articles[7].field(title)
        everything = EntryListModel(cache)  # every content type: each row its own title
        author = next(r for r in cache.entries(limit=200) if r.content_type == "author")
        row = everything.row_of(author.id)
        assert row is not None and everything.data(everything.index(row, 0)) == author.field(
            "name")


def test_set_locale_and_set_query_reset_once(qapp: QCoreApplication, tmp_path: Path) -> None:
    space = blog()
    for n in range(5):
        space.publish_entry(f"e{n}", "article", article(f"t{n}", 5 - n, de=f"d{n}" if n % 2
                                                        else None))
    with Emulator(space, access_token=TOKEN) as emu, open_cache(
            emu, tmp_path / "s.sqlite3") as cache:
        cache.sync()
        model = EntryListModel(cache, "article", order_by="title")
        notes = Notifications(model)
        model.set_locale("de-DE")
        assert model.locale == "de-DE"
        assert [model.data(model.index(r, 0)) for r in range(5)] == [
            "d1", "d3", "t0", "t2", "t4"]
        model.set_query("article", order_by="rank")
        assert rows(model) == ["e4", "e3", "e2", "e1", "e0"] and model.locale == "de-DE"
        assert [k for k, _ in notes.seen].count("modelReset") == 2
        with pytest.raises(QueryError):
            model.set_locale("xx-XX")
        assert model.locale == "de-DE" and rows(model) == ["e4", "e3", "e2", "e1", "e0"]
        assert [k for k, _ in notes.seen].count("modelReset") == 2


def test_asset_model_follows_assets(qapp: QCoreApplication, tmp_path: Path) -> None:
    space = blog()
    space.publish_asset("a1", {"title": {"en-US": "First", "de-DE": "Erste"}})
    space.publish_asset("a2", {"file": {"en-US": {"fileName": "two.png", "url": "//x/two.png",
                                                  "contentType": "image/png"}}})
    with Emulator(space, access_token=TOKEN) as emu, open_cache(
            emu, tmp_path / "s.sqlite3") as cache:
        cache.sync()
        model = AssetListModel(cache, locale="de-DE")
        assert [model.data(model.index(r, 0)) for r in range(2)] == ["Erste", "two.png"]
        notes = Notifications(model)
        space.publish_asset("a0", {"title": {"en-US": "Zero"}})
        space.delete_asset("a2")
        space.publish_asset("a1", {"title": {"en-US": "First"}})
        sync_in_background(qapp, cache)
        assert rows(model) == ["a0", "a1"]
        assert [model.data(model.index(r, 0)) for r in range(2)] == ["Zero", "First"]
        assert notes.kinds() == {"rowsInserted", "rowsRemoved", "dataChanged"}


def test_role_names_serve_qml(qapp: QCoreApplication, tmp_path: Path) -> None:
    space = blog()
    with Emulator(space, access_token=TOKEN) as emu, open_cache(
            emu, tmp_path / "s.sqlite3") as cache:
        cache.sync()
        model = EntryListModel(cache)
        names = {role: bytes(name.data()) for role, name in model.roleNames().items()}
        assert names == {int(Qt.ItemDataRole.DisplayRole): b"display",
                         EntryListModel.IdRole: b"recordId",
                         EntryListModel.RecordRole: b"record"}
        assert (EntryListModel.IdRole, AssetListModel.RecordRole) == (ID_ROLE, RECORD_ROLE)


# -- lifetime -----------------------------------------------------------------------------------


def receivers() -> dict[str, int]:
    return {name: len(getattr(signals, name).receivers) for name in SIGNALS}


def test_destroying_the_qobject_disconnects_it(qapp: QCoreApplication, tmp_path: Path) -> None:
    space = blog()
    with Emulator(space, access_token=TOKEN) as emu, open_cache(
            emu, tmp_path / "s.sqlite3") as cache:
        gc.collect()  # what earlier tests left for the collector
        before = receivers()
        late = QtSignals(cache)
        late.deleteLater()
        assert receivers() != before
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        assert receivers() == before

        parent = QObject()
        QtSignals(cache, parent=parent)
        model = EntryListModel(cache, parent=parent)
        assert receivers() != before
        del model, parent
        gc.collect()
        assert receivers() == before

        orphan = QtSignals(cache)
        assert receivers() != before
        del orphan
        gc.collect()
        assert receivers() == before

        closed = QtSignals(cache)
        got: list[str] = []
        closed.entryChanged.connect(got.append)
        space.publish_entry("e1", "article", article("One", 1))
        cache.sync()
        closed.close()  # the signal already queued is dropped too
        assert receivers() == before and not closed.connected
        settle(qapp)
        assert got == []
