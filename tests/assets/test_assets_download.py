"""Downloading asset files: what lands, where, in which form, and what asset_path answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asset_support import (
    expected_bytes,
    files_in,
    make_asset_cache,
    publish,
    space_with_files,
    under,
)
from support import TOKEN

from localcache import Cache, ConfigurationError, Contentful, signals
from localcache.emulator import Emulator


def file_requests(emu: Any) -> list[dict[str, str]]:
    """Record the headers of every file request from now on."""
    seen: list[dict[str, str]] = []
    emu.file_faults.on_request = lambda path, headers: seen.append({"path": path, **headers})
    return seen


def test_download_lands_every_file_whole_and_asset_path_finds_it(tmp_path: Path) -> None:
    space = space_with_files(6)
    files = {f"asset{n}": space.published_assets()[f"asset{n}"]["fields"]["file"]["en-US"]
             for n in range(6)}
    ready: list[dict[str, Any]] = []

    def on_ready(sender: Any, **kwargs: Any) -> None:
        ready.append(kwargs)

    with Emulator(space, access_token=TOKEN) as emu, \
            make_asset_cache(emu, tmp_path) as cache, \
            signals.asset_file_ready.connected_to(on_ready, sender=cache):
        requests = file_requests(emu)
        cache.sync()
        assert requests == []  # sync() only queues
        assert cache.asset_path("asset0") is None
        assert cache.assets.stats().pending == 6
        run = cache.assets.download(wait=True)
        assert (run.total, run.downloaded, run.failed) == (6, 6, 0)
        for asset_id, file in files.items():
            path = cache.asset_path(asset_id)
            assert path is not None and under(tmp_path / "assets", path)
            assert path.read_bytes() == expected_bytes(file)
            assert path.suffix == ".png" and asset_id in path.name
        assert sorted(r["id"] for r in ready) == sorted(files)
        assert all(r["locale"] == "en-US" and r["path"].exists() for r in ready)
        assert all(r.get("accept-encoding") == "identity" for r in requests)
        stats = cache.assets.stats()
        assert (stats.files, stats.pending, stats["failed"]) == (6, 0, 0)
        assert stats.bytes == sum(f["details"]["size"] for f in files.values())
        assert cache.assets.check().clean
        before = len(requests)
        assert cache.assets.download().total == 0  # nothing more to fetch
        assert len(requests) == before


def test_without_assets_nothing_is_downloaded(tmp_path: Path) -> None:
    space = space_with_files(2)
    with Emulator(space, access_token=TOKEN) as emu:
        requests = file_requests(emu)
        provider = Contentful(space.space_id, TOKEN, base_url=emu.base_url,
                              asset_base_url=emu.asset_base_url)
        with Cache(provider, path=tmp_path / "s.sqlite3") as cache:
            cache.sync()
            with pytest.raises(ConfigurationError, match="assets=AssetPolicy"):
                cache.asset_path("asset0")
            with pytest.raises(ConfigurationError):
                cache.assets.download()
        assert requests == []
        assert not (tmp_path / "assets").exists()


def test_locales_follow_the_fallback_chain(emulator: Any, tmp_path: Path) -> None:
    space = emulator.space
    english = publish(space, "pic", 20_000)
    from localcache.emulator.files import contentful_file

    german = contentful_file(space.space_id, "pic", "bild.png", 30_000, version=2)
    space.publish_asset("pic", {"title": {"en-US": "pic"},
                                "file": {"en-US": english, "de-DE": german}})
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        cache.assets.download()
        assert cache.asset_path("pic").read_bytes() == expected_bytes(english)
        assert cache.asset_path("pic", "de-DE").read_bytes() == expected_bytes(german)
        # de-AT has no file of its own: it falls back to de-DE, then en-US.
        assert cache.asset_path("pic", "de-AT") == cache.asset_path("pic", "de-DE")
        assert cache.asset_path("nothing") is None
    with make_asset_cache(emulator, tmp_path / "en", locales=["en-US"]) as cache:
        cache.sync()
        assert cache.assets.download().total == 1
        # Only en-US is kept: de-DE falls back to it.
        assert cache.asset_path("pic", "de-DE") == cache.asset_path("pic", "en-US")


def test_one_file_shared_by_locales_is_fetched_once(emulator: Any, tmp_path: Path) -> None:
    publish(emulator.space, "shared", 10_000, locales=("en-US", "de-DE"))
    with make_asset_cache(emulator, tmp_path) as cache:
        requests = file_requests(emulator)
        cache.sync()
        assert cache.assets.download().total == 1
        assert len(requests) == 1
        assert cache.asset_path("shared", "de-DE") == cache.asset_path("shared", "en-US")


def test_mime_types_and_max_file_size(emulator: Any, tmp_path: Path) -> None:
    space = emulator.space
    publish(space, "photo", 5_000)
    publish(space, "manual", 6_000, name="manual.pdf", content_type="application/pdf")
    publish(space, "movie", 9_000, name="movie.mp4", content_type="video/mp4")
    publish(space, "poster", 900_000)
    with make_asset_cache(emulator, tmp_path, mime_types=["image/*", "application/pdf"],
                          max_file_size=100_000) as cache:
        cache.sync()
        run = cache.assets.download()
        assert run.downloaded == 2
        assert cache.asset_path("photo") is not None
        assert cache.asset_path("manual").suffix == ".pdf"
        assert cache.asset_path("movie") is None  # not wanted at all
        assert cache.asset_path("poster") is None  # too big: skipped, and reported so
        report = cache.assets.check()
        assert report.skipped == (("poster", "en-US"),)
        assert report.clean and cache.assets.stats().skipped == 1


def test_variants_go_through_the_image_api(emulator: Any, tmp_path: Path) -> None:
    publish(emulator.space, "hero", 40_000)
    publish(emulator.space, "doc", 7_000, name="doc.pdf", content_type="application/pdf")
    with make_asset_cache(emulator, tmp_path,
                          variants={"image/*": {"w": 1200, "fm": "webp", "q": 80}}) as cache:
        requests = file_requests(emulator)
        cache.sync()
        assert cache.assets.download().downloaded == 2
        image = next(r for r in requests if "hero" in r["path"])
        assert image["path"].endswith("/hero.png?fm=webp&q=80&w=1200")
        paths = {cache.asset_path("hero").suffix, cache.asset_path("doc").suffix}
        assert paths == {".webp", ".pdf"}
        assert cache.assets.check().clean
    from localcache.providers import contentful, contentstack, kontent

    params = (("fm", "webp"), ("q", "80"), ("w", "1200"))
    assert contentful.image_url("https://x/a.png", params) == "https://x/a.png?fm=webp&q=80&w=1200"
    assert contentstack.image_url("https://x/a.png?v=1", params) == \
        "https://x/a.png?v=1&format=webp&quality=80&width=1200"
    assert kontent.image_url("https://x/a.png", (("width", "300"),)) == "https://x/a.png?w=300"


def test_variant_names_are_translated_per_vendor(emulator: Any, tmp_path: Path) -> None:
    publish(emulator.space, "hero", 4_000)
    with make_asset_cache(emulator, tmp_path, variants={"image/*": {"width": 64}}) as cache:
        requests = file_requests(emulator)
        cache.sync()
        assert cache.assets.download().downloaded == 1
        assert [r["path"].rsplit("/", 1)[1] for r in requests] == ["hero.png?w=64"]


def test_a_changed_asset_replaces_its_file(emulator: Any, tmp_path: Path) -> None:
    space = emulator.space
    first = publish(space, "logo", 10_000)
    removed: list[Any] = []
    with make_asset_cache(emulator, tmp_path) as cache, \
            signals.asset_file_removed.connected_to(
                lambda sender, **kw: removed.append(kw), sender=cache):
        cache.sync()
        cache.assets.download()
        old = cache.asset_path("logo")
        assert old.read_bytes() == expected_bytes(first)
        second = publish(space, "logo", 12_000, version=2)
        cache.sync()
        assert cache.asset_path("logo") == old  # the old file until the new one lands
        cache.assets.download()
        new = cache.asset_path("logo")
        assert new != old and new.read_bytes() == expected_bytes(second)
        assert not old.exists() and files_in(tmp_path / "assets") == [new.name]
        assert removed == []  # replaced, not removed
        assert cache.assets.check().clean


def test_a_deleted_asset_has_no_path_from_its_commit_and_its_file_goes(
        emulator: Any, tmp_path: Path) -> None:
    space = emulator.space
    publish(space, "gone", 10_000)
    publish(space, "kept", 10_000)
    seen_at_commit: list[Any] = []
    removed: list[Any] = []
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        cache.assets.download()
        path = cache.asset_path("gone")

        def on_deleted(sender: Any, *, id: str) -> None:  # right after the commit
            seen_at_commit.append((cache.asset_path(id), path.exists()))

        with signals.asset_deleted.connected_to(on_deleted, sender=cache), \
                signals.asset_file_removed.connected_to(
                    lambda sender, **kw: removed.append(kw), sender=cache):
            space.unpublish_asset("gone")
            cache.sync()
        assert seen_at_commit == [(None, True)]  # no path from the commit; file not yet gone
        assert not path.exists()
        assert removed == [{"id": "gone", "locale": "en-US"}]
        assert cache.asset_path("kept") is not None
        assert cache.assets.check().clean


@pytest.mark.parametrize("name", ["../../x", "..\\..\\x", "CON", "con.png", "a" * 10_000,
                                  "nul\x00.png", "/etc/passwd", ""])
def test_hostile_file_names_stay_inside_the_directory(emulator: Any, tmp_path: Path,
                                                      name: str) -> None:
    publish(emulator.space, "evil", 3_000, name=name)
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        run = cache.assets.download()
        assert (run.downloaded, run.failed) == (1, 0)
        path = cache.asset_path("evil")
        assert path is not None and path.parent == tmp_path / "assets"
        assert len(path.name) < 100 and path.name.split(".")[0].upper() not in ("CON", "NUL")
    outside = [p for p in tmp_path.rglob("*") if p.is_file()
               and not under(tmp_path / "assets", p) and "store.sqlite3" not in p.name]
    assert outside == []


def test_a_variant_larger_than_max_file_size_is_skipped_by_its_content_length(
        emulator: Any, tmp_path: Path) -> None:
    publish(emulator.space, "huge", 40_000)
    with make_asset_cache(emulator, tmp_path, max_file_size=10_000,
                          variants={"image/*": {"w": 100}}) as cache:
        cache.sync()
        run = cache.assets.download()  # the record's size says nothing about a variant's
        assert (run.downloaded, run.skipped) == (0, 1)
        assert cache.asset_path("huge") is None
        assert cache.assets.check().skipped == (("huge", "en-US"),)
        assert files_in(tmp_path / "assets") == []
