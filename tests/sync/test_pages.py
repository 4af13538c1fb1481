"""How a page lands: the later of two items wins, writes take the lock up front, reads see one
committed state, and the cache reads with the locales the latest sync stored."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from replay import ReplayServer

from localcache import Cache, Contentful
from localcache.model import StoreScope
from localcache.store.database import Store

TOKEN = "replay-token"
SPACE = "pagespace"
BASE = f"https://cdn.contentful.com/spaces/{SPACE}/environments/master/sync"


def entry(entry_id: str, title: str, revision: int, de: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"title": {"en-US": title}}
    if de is not None:
        fields["title"]["de-DE"] = de
    return {
        "sys": {"type": "Entry", "id": entry_id, "revision": revision,
                "createdAt": "2024-01-01T00:00:00.000Z",
                "updatedAt": f"2024-01-0{revision}T00:00:00.000Z",
                "contentType": {"sys": {"type": "Link", "linkType": "ContentType",
                                        "id": "article"}}},
        "fields": fields,
    }


def page(items: list[Any], next_sync: str) -> dict[str, Any]:
    return {"sys": {"type": "Array"}, "items": items,
            "nextSyncUrl": f"{BASE}?sync_token={next_sync}"}


def locales(*items: dict[str, Any]) -> dict[str, Any]:
    return {"sys": {"type": "Array"}, "items": list(items)}


def open_cache(server: ReplayServer, path: Path) -> Cache:
    return Cache(Contentful(SPACE, TOKEN, base_url=server.base_url), path=path)


def test_the_later_of_two_items_with_one_id_wins(store_path: Path) -> None:
    first = page([entry("dup", "older", 1), entry("other", "x", 1),
                  entry("dup", "newer", 2)], "t1")
    with ReplayServer([first]) as server, open_cache(server, store_path) as cache:
        result = cache.sync()
        stored = cache.entry("dup")
        assert stored is not None
        assert (stored.revision, stored.field("title")) == (2, "newer")
        assert result.entries.added == 2


def test_reads_use_the_locales_the_latest_sync_stored(store_path: Path) -> None:
    initial = page([entry("e1", "hello", 1, de="hallo")], "t1")
    delta = page([], "t2")
    en = {"code": "en-US", "default": True}
    de = {"code": "de-DE", "fallbackCode": "en-US"}
    with ReplayServer([initial, delta], locales(en, de)) as server, \
            open_cache(server, store_path) as cache:
        cache.sync()
        assert cache.entry("e1").field("title", "de-CH") is None  # no such locale yet
        server.locales = locales(en, de, {"code": "de-CH", "fallbackCode": "de-DE"})
        cache.sync()
        assert cache.entry("e1").field("title", "de-CH") == "hallo"


# -- transactions --------------------------------------------------------------------------------

SCOPE = StoreScope("contentful", SPACE, "master")


def test_a_page_takes_the_write_lock_before_it_reads(store_path: Path) -> None:
    """BEGIN IMMEDIATE: from the first statement of a page's transaction no other writer can
    get in, so a page never fails half-way on a lock it could not upgrade to."""
    store = Store(store_path, SCOPE)
    inside, release = threading.Event(), threading.Event()

    def page_transaction() -> None:
        with store.write():
            store.raw_connection().execute("SELECT count(*) FROM entries").fetchone()
            inside.set()
            release.wait(5)

    writer = threading.Thread(target=page_transaction)
    writer.start()
    try:
        assert inside.wait(5)
        other = sqlite3.connect(store_path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
    finally:
        release.set()
        writer.join()
        store.close()


def test_a_read_sees_one_committed_state(store_path: Path) -> None:
    store = Store(store_path, SCOPE)
    try:
        with store.write():
            store.raw_connection().execute(
                "INSERT INTO locales (code, name, is_default, fallback, optional) "
                "VALUES ('en-US', '', 1, NULL, 0)")
        other = sqlite3.connect(store_path, isolation_level=None)
        try:
            with store.reading():
                conn = store.raw_connection()
                before = conn.execute("SELECT count(*) FROM locales").fetchone()[0]
                other.execute("INSERT INTO locales (code, name, is_default, fallback, optional)"
                              " VALUES ('de-DE', '', 0, 'en-US', 0)")
                during = conn.execute("SELECT count(*) FROM locales").fetchone()[0]
                assert during == before == 1  # the commit in between stays unseen
            with store.reading():
                after = store.raw_connection().execute(
                    "SELECT count(*) FROM locales").fetchone()[0]
            assert after == 2
        finally:
            other.close()
    finally:
        store.close()


def deleted(entry_id: str) -> dict[str, Any]:
    return {"sys": {"type": "DeletedEntry", "id": entry_id, "revision": 2,
                    "createdAt": "2024-01-01T00:00:00.000Z",
                    "updatedAt": "2024-01-05T00:00:00.000Z",
                    "deletedAt": "2024-01-05T00:00:00.000Z"}}


def test_net_counts_over_a_multi_page_delta(store_path: Path) -> None:
    """Z stored before; one delta adds X and W and updates Z on page 1, then deletes X and Z
    on page 2: net, W was added, Z deleted, and X (absent at both ends) counts nowhere."""
    initial = page([entry("z", "zed", 1)], "t1")
    first = {"sys": {"type": "Array"},
             "items": [entry("x", "ex", 1), entry("w", "double", 1), entry("z", "zed 2", 2)],
             "nextPageUrl": f"{BASE}?sync_token=t2"}
    second = page([deleted("x"), deleted("z")], "t3")
    with ReplayServer([initial, first, second]) as server, \
            open_cache(server, store_path) as cache:
        cache.sync()
        result = cache.sync()
        assert (result.entries.added, result.entries.updated, result.entries.deleted) == \
            (1, 0, 1)
        assert result.pages == 2
        assert [r.id for r in cache.entries()] == ["w"]
