"""The pieces with no network: the policy's checks, file names, the vendors' asset records, the
emulator's file serving, and the public names."""

from __future__ import annotations

import gzip
import http.client
from pathlib import Path
from typing import Any

import pytest
from asset_support import publish

import localcache
from localcache import AssetError, AssetPolicy, ConfigurationError, LocalCacheError
from localcache.assets.naming import file_name, is_our_file, version_key
from localcache.emulator.files import file_bytes
from localcache.providers import contentful, contentstack, kontent


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"workers": 0}, "workers"), ({"workers": 65}, "workers"), ({"workers": True}, "workers"),
    ({"budget_bytes": -1}, "budget_bytes"), ({"max_file_size": "big"}, "max_file_size"),
    ({"locales": "en-US"}, "locales"), ({"mime_types": [""]}, "mime_types"),
    ({"variants": {"image/*": {"w": float("nan")}}}, "variants"),
    ({"variants": ["image/*"]}, "variants"), ({"directory": 3}, "directory"),
])
def test_a_bad_policy_fails_at_once_naming_the_setting(kwargs: dict[str, Any],
                                                       names: str) -> None:
    with pytest.raises(ConfigurationError, match=names):
        AssetPolicy(**kwargs)


def test_policy_defaults_and_matching() -> None:
    policy = AssetPolicy()
    assert (policy.locales, policy.mime_types, policy.max_file_size, policy.budget_bytes,
            policy.variants, policy.workers, policy.directory) == (
        None, None, None, None, None, 8, None)
    policy = AssetPolicy(mime_types=["image/*", "application/pdf"], locales=["en-US"],
                         variants={"image/*": {"w": 1200, "fm": "webp", "q": 80.0}})
    assert policy.wants_type("IMAGE/PNG; charset=x") and policy.wants_type("application/pdf")
    assert not policy.wants_type("video/mp4") and not policy.wants_type(None)
    assert policy.variant_for("image/jpeg") == (("fm", "webp"), ("q", "80"), ("w", "1200"))
    assert policy.variant_for("application/pdf") == ()
    assert policy.wants_locale("en-US") and not policy.wants_locale("de-DE")
    assert policy.wants_locale(None)  # an unlocalized file
    assert AssetPolicy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize("asset_id", ["../../x", "CON", "a" * 10_000, "x/y\\z", "é€", "", "."])
def test_file_names_are_safe_for_any_id(asset_id: str) -> None:
    version = version_key("https://x/../../CON", 10, None, ())
    name = file_name(asset_id, version, "image/png")
    assert "/" not in name and "\\" not in name and len(name) <= 82
    assert name.endswith(".png") and is_our_file(name) and is_our_file(name + ".part")
    assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", ""}
    assert name != file_name(asset_id + "!", version, "image/png")  # never shared by accident
    assert not is_our_file("notes.txt") and not is_our_file(".DS_Store")


def test_contentful_asset_files_from_a_recorded_asset(load_fixture: Any) -> None:
    items = load_fixture("contentful/sync.response0.json")["items"]
    asset = next(i for i in items if i["sys"]["type"] == "Asset")
    (found,) = contentful.asset_files(asset)
    assert found.asset_id == "1x0xpXu4pSGS4OukSyWGUK" and found.locale == "en-US"
    assert found.url.startswith("https://images.contentful.com/cfexampleapi/")
    assert (found.size, found.content_type, found.name) == (522943, "image/jpeg", "doge.jpg")
    (moved,) = contentful.asset_files(asset, "http://127.0.0.1:9/files")
    assert moved.url == "http://127.0.0.1:9/files" + found.url.removeprefix(
        "https://images.contentful.com")
    assert contentful.asset_files({"sys": {"id": "x"}, "fields": {"file": {"en-US": {}}}}) == []
    assert contentful.asset_files({"fields": []}) == []


def test_contentstack_and_kontent_asset_files() -> None:
    record = {"sys": {"id": "blt1"}, "fields": {
        "url": {"en-us": "https://images.contentstack.io/v3/assets/k/blt1/v/a.png"},
        "file_size": {"en-us": "1234"}, "content_type": {"en-us": "image/png"},
        "filename": {"en-us": "a.png"}}}
    (found,) = contentstack.asset_files(record)
    assert (found.locale, found.size, found.content_type) == ("en-us", 1234, "image/png")
    item = {"fields": {"hero": {"default": {"type": "asset", "value": [
        {"url": "https://assets-us-01.kc-usercontent.com/env/asset-1/a.jpg", "size": 5,
         "type": "image/jpeg", "name": "a.jpg"}]}, "es": {"type": "asset", "value": [
            {"url": "https://assets-us-01.kc-usercontent.com/env/asset-1/a.jpg", "size": 5}]}},
        "title": {"default": {"type": "text", "value": "x"}}}}
    (found,) = kontent.asset_files(item)
    assert (found.asset_id, found.locale, found.size) == ("asset-1", None, 5)


def _get(emu: Any, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=10)
    try:
        conn.request("GET", "/files" + path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_emulator_serves_files_with_range_and_etag(emulator: Any) -> None:
    file = publish(emulator.space, "pic", 10_000)
    path = file["url"].removeprefix("//images.ctfassets.net")
    whole = file_bytes(path, 10_000)
    status, headers, body = _get(emulator, path, {})
    assert status == 200 and body == whole and headers["Accept-Ranges"] == "bytes"
    etag = headers["ETag"]
    status, headers, body = _get(emulator, path, {"Range": "bytes=4000-"})
    assert (status, body) == (206, whole[4000:])
    assert headers["Content-Range"] == "bytes 4000-9999/10000"
    status, _, body = _get(emulator, path, {"Range": "bytes=10-19", "If-Range": etag})
    assert (status, body) == (206, whole[10:20])
    status, _, body = _get(emulator, path, {"Range": "bytes=10-", "If-Range": '"other"'})
    assert (status, body) == (200, whole)  # the file changed: all of it
    assert _get(emulator, path, {"Range": "bytes=10000-"})[0] == 416
    # A whole file is compressed for a client that accepts it (a CDN does); a range never is.
    status, headers, body = _get(emulator, path, {"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip" and gzip.decompress(body) == whole
    status, headers, _ = _get(emulator, path, {"Accept-Encoding": "gzip", "Range": "bytes=5-"})
    assert status == 206 and "Content-Encoding" not in headers
    assert _get(emulator, "/testspace/nothing/x/y.png", {})[0] == 404


def test_asset_error_is_a_local_cache_error_in_the_documented_tree() -> None:
    assert AssetError.__bases__ == (LocalCacheError,)
    assert "AssetError" in localcache.errors.__doc__
    for name in ("AssetPolicy", "AssetReport", "AssetError", "AssetFiles", "AssetStats",
                 "AssetDownload"):
        assert name in localcache.__all__
    assert localcache.__all__ == sorted(localcache.__all__)
    assert {"asset_file_ready", "asset_file_removed"} <= set(localcache.signals.__all__)
    assert "asset_file_ready" in localcache.signals.__doc__


def test_a_directory_that_cannot_be_made_is_an_asset_error(emulator: Any,
                                                           tmp_path: Path) -> None:
    from asset_support import make_asset_cache

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(AssetError, match="cannot write asset files"):
        make_asset_cache(emulator, tmp_path, directory=blocker / "assets")
    from support import make_cache  # the store was closed again: it opens without assets

    with make_cache(emulator, tmp_path / "store.sqlite3") as cache:
        assert cache.stats()["entries"] == 0


def test_the_emulator_serves_a_file_at_its_own_path_too(emulator: Any, tmp_path: Path) -> None:
    from asset_support import make_asset_cache

    file = publish(emulator.space, "pic", 2_000)
    path = file["url"].removeprefix("//images.ctfassets.net")
    conn = http.client.HTTPConnection(emulator.host, emulator.port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200 and response.read() == file_bytes(path, 2_000)
    conn.close()
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        assert cache.assets.download().downloaded == 1
