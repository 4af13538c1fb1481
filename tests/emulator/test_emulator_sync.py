"""Wire-level behaviour of the emulated CDA sync endpoint and its companions."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import struct
import threading
import time
from typing import Any

import pytest

from localcache.emulator import Emulator, Space

from .helpers import MEDIA_TYPE, TOKEN, Cda, apply, article, assert_error, asset, expected_store

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# sys keys as recorded from the real CDA (fixtures MultilocalePreseedJSONFiles_0/demo_update).
ENTRY_SYS = {"space", "id", "type", "createdAt", "updatedAt", "environment", "revision",
             "contentType"}  # fmt: skip
ASSET_SYS = ENTRY_SYS - {"contentType"}
DELETED_SYS = {"space", "id", "type", "createdAt", "updatedAt", "deletedAt", "environment",
               "revision"}  # fmt: skip


def test_initial_sync_pages_deliver_everything_once(space: Space, cda: Cda, emu: Emulator) -> None:
    result = cda.initial(limit=4)
    keys = result.item_keys()
    assert len(keys) == len(set(keys))
    store: dict[tuple[str, str], dict[str, Any]] = {}
    apply(store, result.items)
    assert store == expected_store(space)
    assert len(keys) == 27
    prefix = f"{emu.base_url}/spaces/demo/environments/master/sync?sync_token="
    for page in result.pages[:-1]:
        assert len(page["items"]) == 4
        assert page["nextPageUrl"].startswith(prefix)
        assert page["sys"] == {"type": "Array"}
    assert 0 < len(result.pages[-1]["items"]) <= 4
    assert result.next_sync_url.startswith(prefix)
    assert len(result.pages) == 7


def test_items_have_the_recorded_cda_shape(cda: Cda) -> None:
    items = cda.initial().items
    entry = next(item for item in items if item["sys"]["id"] == "article-001")
    assert set(entry) == {"sys", "fields"}
    assert set(entry["sys"]) == ENTRY_SYS
    sys = entry["sys"]
    assert sys["space"] == {"sys": {"type": "Link", "linkType": "Space", "id": "demo"}}
    assert sys["environment"] == {
        "sys": {"id": "master", "type": "Link", "linkType": "Environment"}
    }
    assert sys["contentType"] == {
        "sys": {"type": "Link", "linkType": "ContentType", "id": "article"}
    }
    assert sys["revision"] == 1
    assert TIMESTAMP.match(sys["createdAt"]) and TIMESTAMP.match(sys["updatedAt"])
    assert entry["fields"]["title"] == {"en-US": "Article 1", "de-DE": "Article 1 (de)"}
    assert entry["fields"]["author"]["en-US"] == {
        "sys": {"type": "Link", "linkType": "Entry", "id": "author-1"}
    }
    found = next(item for item in items if item["sys"]["type"] == "Asset")
    assert set(found["sys"]) == ASSET_SYS
    assert found["fields"]["file"]["en-US"]["fileName"].endswith(".png")


def test_delta_sends_latest_state_and_deletions(space: Space, cda: Cda) -> None:
    first = cda.initial()
    assert all(not item["sys"]["type"].startswith("Deleted") for item in first.items)
    assert space.publish_entry("article-001", "article", article("Changed")) == 2
    space.publish_entry("article-002", "article", article("Twice a"))
    space.publish_entry("article-002", "article", article("Twice b"))
    space.unpublish_entry("article-003")
    space.delete_entry("article-004")
    space.delete_asset("asset-1")
    space.publish_entry("article-new", "article", article("New"))
    delta = cda.follow(first.next_sync_url)
    by_key = {(item["sys"]["type"], item["sys"]["id"]): item for item in delta.items}
    assert set(by_key) == {
        ("Entry", "article-001"),
        ("Entry", "article-002"),
        ("DeletedEntry", "article-003"),
        ("DeletedEntry", "article-004"),
        ("DeletedAsset", "asset-1"),
        ("Entry", "article-new"),
    }
    assert len(delta.items) == 6
    assert by_key[("Entry", "article-001")]["fields"]["title"]["en-US"] == "Changed"
    assert by_key[("Entry", "article-002")]["fields"]["title"]["en-US"] == "Twice b"
    assert by_key[("Entry", "article-002")]["sys"]["revision"] == 3
    deleted = by_key[("DeletedEntry", "article-003")]
    assert set(deleted) == {"sys"} and set(deleted["sys"]) == DELETED_SYS
    assert deleted["sys"]["revision"] == 1
    assert TIMESTAMP.match(deleted["sys"]["deletedAt"])
    store: dict[tuple[str, str], dict[str, Any]] = {}
    apply(store, first.items)
    apply(store, delta.items)
    assert store == expected_store(space)
    # Nothing changed since: an empty delta that still hands out a token.
    quiet = cda.follow(delta.next_sync_url)
    assert quiet.items == [] and len(quiet.pages) == 1
    # The token of an empty delta keeps working.
    space.publish_entry("article-005", "article", article("Later"))
    later = cda.follow(quiet.next_sync_url)
    assert later.item_keys() == [("Entry", "article-005")]


def test_initial_sync_never_contains_deletions(space: Space, cda: Cda) -> None:
    space.unpublish_entry("article-000")
    space.delete_entry("article-001")
    space.delete_asset("asset-0")
    keys = cda.initial(limit=3).item_keys()
    assert ("Entry", "article-000") not in keys and ("Entry", "article-001") not in keys
    assert ("Asset", "asset-0") not in keys
    assert all(not kind.startswith("Deleted") for kind, _ in keys)
    assert len(keys) == 24


def test_ids_come_back_with_revision_one(space: Space, cda: Cda) -> None:
    space.publish_entry("article-000", "article", article("v2"))
    first = cda.initial()
    before = next(i for i in first.items if i["sys"]["id"] == "article-000")["sys"]
    assert before["revision"] == 2
    space.delete_entry("article-000")
    assert space.publish_entry("article-000", "article", article("reborn")) == 1
    delta = cda.follow(first.next_sync_url)
    assert delta.item_keys() == [("Entry", "article-000")]  # only the latest state of the id
    after = delta.items[0]["sys"]
    assert after["revision"] == 1
    assert after["createdAt"] > before["createdAt"]
    space.unpublish_entry("article-000")
    assert space.publish_entry("article-000", "article", article("again")) == 2


def test_type_filters(space: Space, cda: Cda) -> None:
    entries = cda.initial(type="Entry")
    assert {kind for kind, _ in entries.item_keys()} == {"Entry"} and len(entries.items) == 23
    assets = cda.initial(type="Asset")
    assert {kind for kind, _ in assets.item_keys()} == {"Asset"} and len(assets.items) == 4
    deletions = cda.initial(type="Deletion")
    assert deletions.items == []
    deleted_entries = cda.initial(type="DeletedEntry")
    deleted_assets = cda.initial(type="DeletedAsset")
    space.delete_entry("article-000")
    space.delete_asset("asset-0")
    space.publish_entry("article-001", "article", article("changed"))
    space.publish_asset("asset-1", asset("changed"))
    assert cda.follow(entries.next_sync_url).item_keys() == [("Entry", "article-001")]
    assert cda.follow(assets.next_sync_url).item_keys() == [("Asset", "asset-1")]
    assert sorted(cda.follow(deletions.next_sync_url).item_keys()) == [
        ("DeletedAsset", "asset-0"),
        ("DeletedEntry", "article-000"),
    ]
    only_entries = cda.follow(deleted_entries.next_sync_url)
    assert only_entries.item_keys() == [("DeletedEntry", "article-000")]
    only_assets = cda.follow(deleted_assets.next_sync_url)
    assert only_assets.item_keys() == [("DeletedAsset", "asset-0")]


def test_content_type_filter_never_delivers_deletions(space: Space, cda: Cda) -> None:
    authors = cda.initial(type="Entry", content_type="author", limit=2)
    assert sorted(authors.item_keys()) == [("Entry", f"author-{n}") for n in range(3)]
    assert len(authors.pages) == 2
    space.delete_entry("author-0")
    space.publish_entry("author-1", "author", {"name": {"en-US": "Renamed"}})
    space.publish_entry("article-001", "article", article("not an author"))
    delta = cda.follow(authors.next_sync_url)
    assert delta.item_keys() == [("Entry", "author-1")]


def test_limit_defaults_to_page_size_and_is_kept_in_the_token(space: Space) -> None:
    with Emulator(space, access_token=TOKEN, page_size=10) as emu:
        client = Cda(emu)
        result = client.initial()
        assert [len(page["items"]) for page in result.pages] == [10, 10, 7]
        result = client.initial(limit=25)
        assert [len(page["items"]) for page in result.pages] == [25, 2]
        for number in range(30):
            space.publish_entry(f"article-{number:03d}", "article", article(f"x{number}"))
        delta = client.follow(result.next_sync_url)
        assert [len(page["items"]) for page in delta.pages] == [25, 5]
        client.close()


@pytest.mark.parametrize(
    "params",
    [
        {"initial": "true", "content_type": "article"},
        {"initial": "true", "type": "Asset", "content_type": "article"},
        {"initial": "true", "type": "Entry", "content_type": ""},
        {"initial": "true", "type": "Bogus"},
        {"initial": "true", "limit": "0"},
        {"initial": "true", "limit": "1001"},
        {"initial": "true", "limit": "ten"},
        {"initial": "false"},
        {},
        {"sync_token": "not-a-token"},
        {"sync_token": ""},
    ],
)
def test_bad_sync_requests_are_400(cda: Cda, params: dict[str, str]) -> None:
    assert_error(cda.get(cda.url("/sync"), **params), 400, "BadRequest")


@pytest.mark.parametrize("extra", [{"limit": "5"}, {"type": "Entry"}, {"initial": "true"}])
def test_initial_parameters_with_a_token_are_400(cda: Cda, extra: dict[str, str]) -> None:
    url = cda.initial().next_sync_url
    assert_error(cda.get(url, **extra), 400, "BadRequest")


def test_tokens_with_another_version_or_forged_anchor_are_400(cda: Cda) -> None:
    url = cda.initial().next_sync_url
    raw = url.split("sync_token=")[1]
    payload = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))

    def forged(**changes: Any) -> str:
        text = json.dumps({**payload, **changes}).encode()
        return base64.urlsafe_b64encode(text).rstrip(b"=").decode()

    for token in (forged(v=2), forged(at=None, **{"from": 10_000}), forged(s="other")):
        assert_error(cda.get(cda.url("/sync"), sync_token=token), 400, "BadRequest")
    assert cda.get(cda.url("/sync"), sync_token=forged()).status_code == 200


def test_legacy_paths_serve_master(cda: Cda) -> None:
    result = cda.initial(legacy=True, limit=10)
    assert len(result.items) == 27
    assert "/environments/master/sync?sync_token=" in result.next_sync_url
    assert cda.get(cda.url("/locales", legacy=True)).status_code == 200
    assert cda.get(cda.url("/content_types", legacy=True)).status_code == 200


def test_auth(emu: Emulator, cda: Cda) -> None:
    url = cda.url("/sync")
    anonymous = Cda(emu, token="wrong")
    assert_error(anonymous.get(url, initial="true"), 401, "AccessTokenInvalid")
    anonymous.session.headers.pop("Authorization")
    assert_error(anonymous.get(url, initial="true"), 401, "AccessTokenInvalid")
    assert anonymous.get(url, initial="true", access_token=TOKEN).status_code == 200
    assert_error(anonymous.get(cda.url("/locales")), 401, "AccessTokenInvalid")
    anonymous.close()


def test_not_found(emu: Emulator, cda: Cda) -> None:
    base = emu.base_url
    for url in (
        f"{base}/spaces/other/environments/master/sync",
        f"{base}/spaces/demo/environments/staging/sync",
        f"{base}/spaces/demo/environments/master/nope",
        f"{base}/spaces/demo/environments/master/content_types/nope",
        f"{base}/elsewhere",
    ):
        assert_error(cda.get(url, initial="true"), 404, "NotFound")


def test_locales_endpoint(cda: Cda) -> None:
    response = cda.get(cda.url("/locales"))
    assert response.headers["Content-Type"] == MEDIA_TYPE
    body = response.json()
    assert body["sys"] == {"type": "Array"}
    assert (body["total"], body["skip"], body["limit"]) == (3, 0, 1000)
    simplified = [
        (item["code"], item["default"], item["fallbackCode"], item["optional"])
        for item in body["items"]
    ]
    assert simplified == [
        ("en-US", True, None, False),
        ("de-DE", False, "en-US", False),
        ("fr-FR", False, "de-DE", True),
    ]
    for item in body["items"]:
        assert item["name"] and item["sys"]["type"] == "Locale" and item["sys"]["id"]


def test_content_types_and_space_endpoints(cda: Cda) -> None:
    body = cda.get(cda.url("/content_types")).json()
    assert body["total"] == 2 and body["limit"] == 100
    article_type = next(item for item in body["items"] if item["sys"]["id"] == "article")
    assert article_type["displayField"] == "title" and article_type["name"] == "Article"
    assert article_type["sys"]["type"] == "ContentType"
    title = article_type["fields"][0]
    assert title == {
        "id": "title",
        "name": "Title",
        "type": "Symbol",
        "localized": True,
        "required": False,
        "disabled": False,
        "omitted": False,
    }
    single = cda.get(cda.url("/content_types/author")).json()
    assert single["sys"]["id"] == "author"
    space_body = cda.get(f"{cda.emu.base_url}/spaces/demo").json()
    assert space_body["sys"] == {"type": "Space", "id": "demo"}
    assert [locale["code"] for locale in space_body["locales"]] == ["en-US", "de-DE", "fr-FR"]


def test_keep_alive_and_request_counter(emu: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(emu.base_url.rsplit(":", 1)[1]))
    before = emu.requests_served
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(3):
        connection.request("GET", "/spaces/demo/environments/master/locales", headers=headers)
        response = connection.getresponse()
        assert response.version == 11 and response.status == 200
        assert int(response.headers["Content-Length"]) == len(response.read())
        assert response.headers["X-Contentful-Request-Id"]
    connection.close()
    assert emu.requests_served == before + 3


def test_start_stop_and_context_manager(space: Space) -> None:
    emu = Emulator(space, access_token=TOKEN).start()
    port = int(emu.base_url.rsplit(":", 1)[1])
    assert port > 0
    client = Cda(emu)
    assert client.get(client.url("/locales")).status_code == 200
    emu.stop()
    emu.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    client.close()


def test_serve_forever_in_foreground_until_stopped(space: Space) -> None:
    emu = Emulator(space, access_token=TOKEN, port=0)
    thread = threading.Thread(target=emu.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            url = emu.base_url
            break
        except RuntimeError:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    client = Cda(emu)
    assert client.get(f"{url}/spaces/demo/environments/master/locales").status_code == 200
    client.close()
    emu.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_client_hanging_up_mid_response_is_silent(
    space: Space, capfd: pytest.CaptureFixture[str]
) -> None:
    for number in range(300):
        space.publish_entry(f"bulk-{number:04d}", "article", article("x" * 2000))
    with Emulator(space, access_token=TOKEN) as emu:
        port = int(emu.base_url.rsplit(":", 1)[1])
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"GET /spaces/demo/environments/master/sync?initial=true&limit=1000 "
                    b"HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-token\r\n\r\n"
                )
                # linger 0: close with a reset while the server is still writing
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client = Cda(emu)
        assert client.get(client.url("/locales")).status_code == 200
        client.close()
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
