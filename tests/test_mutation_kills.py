"""Tests written to kill mutants that survived the sampled mutation run over sync/, store/ and
providers/ (docs/reliability.md, "Mutation testing"): edges of each area that the wider suites
happened not to pin down. The mutants each test kills are listed in that section."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from replay import LoopbackServer, send
from support import TOKEN, article, make_cache

from localcache import (
    AuthenticationError,
    Cache,
    ConfigurationError,
    Contentful,
    Contentstack,
    HttpPolicy,
    Kontent,
    PageError,
    QueryError,
    StoreCorruptError,
    StoreError,
    SyncError,
    signals,
)
from localcache.emulator import Emulator, Project, Stack
from localcache.model import Delta, StoreScope
from localcache.providers.http import HttpResponse, HttpTransport
from localcache.store.apply import apply_deltas
from localcache.store.database import Store
from localcache.store.query import LocaleChain
from localcache.store.schema import APPLICATION_ID, read_header, store_error
from localcache.store.search import ensure_index, search_rows
from localcache.store.select import read_entries
from localcache.sync.engine import SyncEngine

CS_TOKEN = "mutation-kills-token"
# -- providers -------------------------------------------------------------------------------------

FAST = HttpPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"
ITEM = "00000000-0000-4000-8000-000000000001"


class ExactServer(LoopbackServer):
    """Answers every GET with the same body and its exact Content-Length."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        send(request, 200, self.body)


class JsonServer(LoopbackServer):
    """Answers every GET with one JSON document."""

    def __init__(self, document: object) -> None:
        super().__init__()
        self.document = document

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        send(request, 200, self.document)


def test_a_response_of_exactly_the_cap_is_accepted() -> None:
    body = b'{"items": []}' + b" " * 987
    assert len(body) == 1_000
    policy = HttpPolicy(max_attempts=1, max_response_bytes=1_000)
    with ExactServer(body) as server:
        transport = HttpTransport(headers={}, policy=policy)
        try:
            assert transport.request("GET", server.base_url + "/x").body == body
        finally:
            transport.close()


def test_contentstack_names_the_page_it_could_not_parse() -> None:
    provider = Contentstack("blt_api", "cs_token", "production", base_url="https://cdn.example")
    response = HttpResponse(status=200, headers={"Content-Type": "application/json"},
                            body=b'{"no_items": true}', request_id=None)
    with pytest.raises(PageError, match="sync page 3") as failure:
        provider.parse_page(response, 3)
    assert failure.value.page == 3


def _secured_project() -> Project:
    project = Project(environment_id=ENV_ID, languages=["default"], secure_api_key="secure-k1")
    project.add_type("article", elements={"title": "text"})
    project.upsert_variant(ITEM, "item_1", "article",
                           "default", {"title": "One"})
    return project


def test_kontent_sends_its_api_key_as_a_bearer_token(tmp_path: Path) -> None:
    with Emulator(_secured_project(), access_token=None) as emu:
        with Cache(Kontent(ENV_ID, api_key="secure-k1", base_url=emu.base_url, http=FAST),
                   path=tmp_path / "k.sqlite3") as cache:
            cache.sync()
            assert [record.id for record in cache.entries()] == [ITEM]
            vendor = cache.entries()[0].raw["vendor"]["default"]
            assert vendor["payload"]["system"]["id"] == ITEM    # Kontent's item, kept
        with Cache(Kontent(ENV_ID, base_url=emu.base_url, http=FAST),
                   path=tmp_path / "anon.sqlite3") as cache, \
                pytest.raises(AuthenticationError):
            cache.sync()


def test_kontent_language_without_a_name_gets_an_empty_name() -> None:
    languages = {"languages": [
        {"system": {"id": "00000000-0000-0000-0000-000000000000", "codename": "default",
                    "name": "Default project language"}},
        {"system": {"id": "11111111-1111-1111-1111-111111111111", "codename": "es-ES"}},
    ], "pagination": {"skip": 0, "limit": 0, "count": 2, "next_page": ""}}
    with JsonServer(languages) as server:
        provider = Kontent(ENV_ID, base_url=server.base_url, http=FAST)
        locales = provider.fetch_locales()
    assert locales is not None
    assert [(x.code, x.name, x.default) for x in locales] == [
        ("default", "Default project language", True), ("es-ES", "", False)]


def test_contentful_content_types_error_names_the_response() -> None:
    response = HttpResponse(status=200, headers={"Content-Type": "application/json"},
                            body=b"<html>not json</html>", request_id=None)
    with pytest.raises(PageError, match=r"^content types response: body is not valid JSON"):
        Contentful.parse_content_types(response)


class StatusServer(LoopbackServer):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        send(request, self.status, {"message": "no", "request_id": "r1", "error_code": 0})


def test_kontent_languages_failure_names_the_request() -> None:
    with StatusServer(500) as server:
        provider = Kontent(ENV_ID, base_url=server.base_url, http=FAST)
        with pytest.raises(SyncError, match="languages request"):
            provider.fetch_locales()


def test_contentful_entry_whose_content_type_id_is_not_text_is_refused() -> None:
    item = {"sys": {"type": "Entry", "id": "e1", "revision": 1,
                    "contentType": {"sys": {"type": "Link", "linkType": "ContentType",
                                            "id": 42}}},
            "fields": {}}
    page = {"sys": {"type": "Array"}, "items": [item],
            "nextSyncUrl": "https://cdn.contentful.com/spaces/s/sync?sync_token=t2"}
    response = HttpResponse(status=200, headers={"Content-Type": "application/json"},
                            body=json.dumps(page).encode(), request_id=None)
    with pytest.raises(PageError, match=r"has no sys\.contentType link"):
        Contentful.parse_page(response, 1)


def test_contentful_preview_reads_the_preview_api() -> None:
    assert Contentful("space", "token", preview=True).base_url == "https://preview.contentful.com"
    assert Contentful("space", "token").base_url == "https://cdn.contentful.com"


def test_kontent_without_an_environment_says_what_is_missing() -> None:
    with pytest.raises(ConfigurationError, match=r"^Kontent needs an environment_id"):
        Kontent("")

def test_kontent_item_without_a_type_is_refused_naming_the_field() -> None:
    # The v1 page parser, fed directly: the emulator never serves an item without a type.
    provider = Kontent(ENV_ID, api_version=1)
    item = {"change_type": "changed_item",
            "data": {"system": {"id": ITEM, "language": "default", "codename": "x"}}}
    with pytest.raises(PageError, match=r"item 0: system\.type is missing"):
        provider._v1_page({"items": [item]}, 4)

def test_contentstack_files_a_published_item_naming_no_locale_under_its_master_locale() -> None:
    provider = Contentstack("blt_api", "cs_token", "production", base_url="https://cdn.example",
                            default_locale="fr-fr")
    item = {"type": "entry_published", "content_type_uid": "blog", "event_at": "2024-01-02",
            "data": {"uid": "blt1", "_version": 1, "title": "Bonjour"}}
    body = {"items": [item], "sync_token": "t2"}
    response = HttpResponse(status=200, headers={"Content-Type": "application/json"},
                            body=json.dumps(body).encode(), request_id=None)
    (delta,) = provider.parse_page(response, 1).deltas
    assert (delta.id, delta.locale) == ("blt1", "fr-fr")

def _contentful_page(*items: dict[str, Any]) -> HttpResponse:
    page = {"sys": {"type": "Array"}, "items": list(items),
            "nextSyncUrl": "https://cdn.contentful.com/spaces/s/sync?sync_token=t2"}
    return HttpResponse(status=200, headers={"Content-Type": "application/json"},
                        body=json.dumps(page).encode(), request_id=None)


def test_contentful_takes_any_64_bit_revision() -> None:
    def entry(revision: int) -> dict[str, Any]:
        return {"sys": {"type": "Entry", "id": f"e{revision}", "revision": revision,
                        "contentType": {"sys": {"type": "Link", "linkType": "ContentType",
                                                "id": "article"}}}, "fields": {}}

    deltas = Contentful.parse_page(_contentful_page(entry(500), entry(2**63 - 1)), 1).deltas
    assert [d.revision for d in deltas] == [500, 2**63 - 1]
    with pytest.raises(PageError, match="not a 64-bit natural number"):
        Contentful.parse_page(_contentful_page(entry(2**63)), 1)

def test_contentful_content_types_refused_keeps_the_stored_ones_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with StatusServer(404) as server, caplog.at_level(logging.WARNING, logger="localcache"):
        provider = Contentful("space", "token", base_url=server.base_url, http=FAST)
        assert provider.fetch_content_types() is None
    (record,) = [r for r in caplog.records if "keeping the content types" in r.getMessage()]
    assert record.getMessage().startswith("content types request")

def test_contentstack_content_type_without_a_schema_has_no_fields() -> None:
    from localcache.providers.contentstack import parse_content_types

    body = {"content_types": [{"uid": "blog", "title": "Blog"}], "count": 1}
    response = HttpResponse(status=200, headers={"Content-Type": "application/json"},
                            body=json.dumps(body).encode(), request_id=None)
    (info,), count = parse_content_types(response)
    assert info.id == "blog" and count == 1

def test_contentstack_content_types_refused_keeps_the_stored_ones_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with StatusServer(404) as server, caplog.at_level(logging.WARNING, logger="localcache"):
        provider = Contentstack("blt_api", "cs_token", "production", base_url=server.base_url,
                                http=FAST)
        assert provider.fetch_content_types() is None
    (record,) = [r for r in caplog.records if "keeping the content types" in r.getMessage()]
    assert record.getMessage().startswith("content types request")


def test_contentstack_refused_sync_page_is_named(tmp_path: Path) -> None:
    with StatusServer(422) as server, \
            Cache(Contentstack("blt_api", "cs_token", "production", base_url=server.base_url,
                               http=FAST), path=tmp_path / "cs.sqlite3") as cache, \
            pytest.raises(SyncError, match=r"^sync page 1"):
        cache.sync()


def test_kontent_preview_reads_the_preview_api() -> None:
    from localcache.providers.kontent import DELIVERY_URL, PREVIEW_URL

    assert Kontent(ENV_ID, api_key="k", preview=True).base_url == PREVIEW_URL
    assert Kontent(ENV_ID, api_key="k").base_url == DELIVERY_URL


# -- store -----------------------------------------------------------------------------------------

SCOPE = StoreScope("contentful", "space", "master")


def _asset(asset_id: str, revision: int) -> Delta:
    document = {"sys": {"type": "Asset", "id": asset_id, "revision": revision},
                "fields": {"title": {"en-US": asset_id}}}
    return Delta("Asset", asset_id, False, document, revision=revision,
                 created_at="2024-01-01T00:00:00Z", updated_at="2024-01-02T00:00:00Z")


def test_assets_without_a_page_source_are_encoded_and_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3", SCOPE)
    try:
        with store.write():
            changes = apply_deltas(store.raw_connection(), [_asset("a1", 3), _asset("a2", 1)], 1)
        rows = store.raw_connection().execute(
            "SELECT id, revision, updated_at FROM assets ORDER BY id").fetchall()
    finally:
        store.close()
    assert rows == [("a1", 3, "2024-01-02T00:00:00Z"), ("a2", 1, "2024-01-02T00:00:00Z")]
    assert changes is not None


def test_store_checks_integrity_on_open_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path, SCOPE)
    with store.write():
        apply_deltas(store.raw_connection(), [_asset(f"a{n:03d}", 1) for n in range(300)], 1)
    store.close()                                   # last connection: the WAL is checkpointed
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    offset = len(data) - 2 * page_size          # one page of the assets' rows
    data[offset + 8:offset + 200] = b"\xff" * 192
    path.write_bytes(bytes(data))
    Store(path, SCOPE).close()                      # the default: no integrity check on open
    with pytest.raises(StoreCorruptError):
        Store(path, SCOPE, verify=True)

def test_an_ambiguous_record_that_matches_what_is_stored_is_still_refused(
    tmp_path: Path,
) -> None:
    # The sys object repeats "revision": Python reads the last, SQLite's JSON the first.
    def page(sys_text: str) -> HttpResponse:
        item = ('{"sys": {"type": "Entry", "id": "e1", ' + sys_text + ', "contentType": '
                '{"sys": {"type": "Link", "linkType": "ContentType", "id": "article"}}}, '
                '"fields": {}}')
        body = ('{"sys": {"type": "Array"}, "items": [' + item + '], "nextSyncUrl": '
                '"https://cdn.contentful.com/spaces/s/sync?sync_token=t2"}')
        return HttpResponse(status=200, headers={"Content-Type": "application/json"},
                            body=body.encode(), request_id=None)

    store = Store(tmp_path / "s.sqlite3", SCOPE)
    try:
        first = Contentful.parse_page(page('"revision": 2'), 1)
        with store.write():
            apply_deltas(store.raw_connection(), first.deltas, 1, first.source)
        again = Contentful.parse_page(page('"revision": 1, "revision": 2'), 2)
        with pytest.raises(PageError, match="sync page 2: Entry 'e1' is ambiguous"), \
                store.write():
            apply_deltas(store.raw_connection(), again.deltas, 2, again.source)
    finally:
        store.close()

def test_read_entries_filters_by_content_type(tmp_path: Path) -> None:
    def entry(entry_id: str, content_type: str) -> Delta:
        document = {"sys": {"type": "Entry", "id": entry_id, "revision": 1, "contentType": {
            "sys": {"type": "Link", "linkType": "ContentType", "id": content_type}}},
            "fields": {}}
        return Delta("Entry", entry_id, False, document, content_type=content_type, revision=1)

    store = Store(tmp_path / "s.sqlite3", SCOPE)
    try:
        with store.write():
            apply_deltas(store.raw_connection(), [entry("a", "blog"), entry("b", "page")], 1)
        with store.reading():
            found = read_entries(store.models, LocaleChain(), content_type="page")
    finally:
        store.close()
    assert [record.id for record in found] == ["b"]

def test_read_header_reports_the_application_id(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    assert read_header(path).exists is False
    Store(path, SCOPE).close()
    header = read_header(path)
    assert header.exists and header.application_id == APPLICATION_ID
    assert header.user_version > 0


def test_a_bad_item_in_an_in_list_names_the_key(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_entry("e1", "article", article("one"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        with pytest.raises(QueryError, match=r"^where\['title'\]: None is not a value"):
            cache.entries("article", where={"title": {"in": ["one", None]}})


# -- sync ------------------------------------------------------------------------------------------



def test_contentstack_deletion_reports_the_deleted_entrys_content_type(tmp_path: Path) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us"])
    stack.publish_entry("post1", "blog", "en-us", {"title": "One"})
    stack.publish_entry("page1", "landing", "en-us", {"title": "Home"})
    committed: list[Any] = []

    def receive(sender: Any, *, changes: Any) -> None:
        committed.append(changes)

    with Emulator(stack, access_token=CS_TOKEN) as emu, \
            Cache(Contentstack("blt_api", CS_TOKEN, "production", base_url=emu.base_url),
                  path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        stack.delete_entry("post1", "en-us")
        committed.clear()
        signals.changes_committed.connect(receive, sender=cache, weak=False)
        try:
            cache.sync()
        finally:
            signals.changes_committed.disconnect(receive, sender=cache)
        page1 = cache.entry("page1")
        assert cache.entry("post1") is None and page1 is not None
        assert page1.raw["sys"]["createdAt"] is not None          # from the locale's vendor data
        assert page1.raw["sys"]["createdAt"] == page1.raw["vendor"]["en-us"]["createdAt"]
    assert [c.entries_deleted for c in committed] == [("post1",)]
    assert committed[0].content_types == frozenset({"blog"})


def test_contentful_locale_fallbacks_that_are_not_codes_are_none() -> None:
    body = {"sys": {"type": "Array"}, "items": [
        {"code": "en-US", "name": "English", "default": True, "fallbackCode": None},
        {"code": "de-DE", "name": "German", "fallbackCode": ""},
        {"code": "fr-FR", "name": "French", "fallbackCode": 7},
        {"code": "de-AT", "name": "Austrian", "fallbackCode": "de-DE"},
    ]}
    response = HttpResponse(status=200, headers={"Content-Type": "application/json"},
                            body=json.dumps(body).encode(), request_id=None)
    assert {x.code: x.fallback for x in Contentful.parse_locales(response)} == {
        "en-US": None, "de-DE": None, "fr-FR": None, "de-AT": "de-DE"}


def test_stats_of_a_store_whose_file_was_removed_count_no_bytes(
    emulator: Any, store_path: Path
) -> None:
    emulator.space.publish_entry("e1", "article", article("one"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        assert cache.stats()["file_bytes"] > 0
        store_path.unlink()
        assert cache.stats()["file_bytes"] == 0


def test_a_delta_sync_with_search_on_indexes_what_the_page_changed(
    emulator: Any, store_path: Path
) -> None:
    # The search option is not on Cache yet: the engine is driven directly, as Cache drives it.
    emulator.space.publish_entry("e1", "article", article("Zebra crossing"))
    provider = Contentful(emulator.space.space_id, TOKEN, base_url=emulator.base_url)
    store = Store(store_path, StoreScope("contentful", emulator.space.space_id, "master"))
    try:
        with store.write():
            assert ensure_index(store.raw_connection()) is None
        SyncEngine(store, provider, object(), search=True).run()
        emulator.space.publish_entry("e2", "article", article("Walrus colony"))
        SyncEngine(store, provider, object(), search=True).run()
        with store.reading():
            found = [row.id for row in
                     search_rows(store.raw_connection(), "walrus", "en-US", None, 10)]
    finally:
        store.close()
    assert found == ["e2"]


def test_a_changed_fallback_rewrites_the_search_index(emulator: Any, store_path: Path) -> None:
    from localcache.emulator import Locale

    emulator.space.publish_entry("e1", "article", article("Zebra crossing"))
    provider = Contentful(emulator.space.space_id, TOKEN, base_url=emulator.base_url)
    store = Store(store_path, StoreScope("contentful", emulator.space.space_id, "master"))

    def found_in_german() -> list[str]:
        with store.reading():
            return [row.id for row in
                    search_rows(store.raw_connection(), "zebra", "de-DE", None, 10)]

    try:
        with store.write():
            assert ensure_index(store.raw_connection()) is None
        SyncEngine(store, provider, object(), search=True).run()
        assert found_in_german() == ["e1"]                    # by fallback to en-US
        emulator.space._locales = (Locale("en-US", default=True), Locale("de-DE"))
        SyncEngine(store, provider, object(), search=True).run()   # no content changed
        assert found_in_german() == []
    finally:
        store.close()


def test_a_full_sync_signals_the_records_it_swapped_in(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_entry("e1", "article", article("one"))
    emulator.space.publish_entry("e2", "article", article("two"))
    changed: list[tuple[str, Any]] = []

    def receive(sender: Any, *, id: str, record: Any) -> None:
        changed.append((id, record))

    with make_cache(emulator, store_path) as cache:
        cache.sync()
        emulator.space.publish_entry("e2", "article", article("two, edited"))
        signals.entry_changed.connect(receive, sender=cache, weak=False)
        try:
            cache.sync(full=True)
        finally:
            signals.entry_changed.disconnect(receive, sender=cache)
    assert changed and all(record is not None and record.id == i for i, record in changed)
    assert {i: r.field("title") for i, r in changed}["e2"] == "two, edited"


def test_order_by_an_unknown_sys_key_names_the_argument(emulator: Any, store_path: Path) -> None:
    with make_cache(emulator, store_path) as cache, pytest.raises(
            QueryError, match=r"^order_by key 'sys\.revision' is not a sys key"):
        cache.entries(order_by=["sys.revision"])


def test_an_unclassified_sqlite_error_keeps_its_text() -> None:
    error = store_error(Path("/x/s.sqlite3"), sqlite3.OperationalError("disk I/O error"))
    assert type(error) is StoreError
    assert str(error) == "store '/x/s.sqlite3': disk I/O error"


def test_contentstack_content_type_filter_reaches_the_sync_api(tmp_path: Path) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us"])
    stack.publish_entry("post1", "blog", "en-us", {"title": "One"})
    stack.publish_entry("page1", "landing", "en-us", {"title": "Home"})
    with Emulator(stack, access_token=CS_TOKEN) as emu, \
            Cache(Contentstack("blt_api", CS_TOKEN, "production", base_url=emu.base_url,
                               content_type_uid="blog"), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        assert [record.id for record in cache.entries()] == ["post1"]


def test_last_sync_time_is_in_the_cms_format(emulator: Any, store_path: Path) -> None:
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        stamp = cache.stats()["last_sync_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
