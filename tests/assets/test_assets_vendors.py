"""Asset files of all three vendors, end to end over the emulator: Contentful (in the other
files), Contentstack's sys_assets per locale, Kontent.ai's asset elements."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from localcache import AssetPolicy, Cache, Contentstack, Kontent, signals
from localcache.emulator import Emulator, Project, Stack
from localcache.emulator.files import file_bytes, kontent_asset

API_KEY, CS_TOKEN, ENVIRONMENT = "blt0123456789abcdef", "cs-delivery-token", "production"
ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"


def served(url: str, size: int) -> bytes:
    return file_bytes(urlsplit(url).path, size)


def test_contentstack_asset_files_per_locale(tmp_path: Path) -> None:
    stack = Stack(API_KEY, ENVIRONMENT, locales=["en-us", "fr-fr"])
    stack.publish_asset("logo", "en-us", {"filename": "logo.png", "file_size": "30000",
                                          "content_type": "image/png"})
    stack.publish_asset("logo", "fr-fr", {"filename": "logo-fr.png", "file_size": "31000",
                                          "content_type": "image/png"})
    stack.publish_asset("evil", "en-us", {"filename": "../../../CON", "file_size": "500",
                                          "content_type": "image/png"})
    with Emulator(stack, access_token=CS_TOKEN) as emu:
        provider = Contentstack(API_KEY, CS_TOKEN, ENVIRONMENT, base_url=emu.base_url,
                                asset_base_url=emu.asset_base_url)
        policy = AssetPolicy(directory=tmp_path / "assets", variants={"image/*": {"w": 300}})
        with Cache(provider, path=tmp_path / "cs.sqlite3", assets=policy) as cache:
            cache.sync()
            run = cache.assets.download()
            assert (run.downloaded, run.failed) == (3, 0)
            published = stack.published()[("asset", "logo")]
            english = cache.asset_path("logo", "en-us")
            french = cache.asset_path("logo", "fr-fr")
            assert english != french
            # A variant: checked against the server's Content-Length (no record size).
            assert english.read_bytes() == served(published["en-us"]["url"], 30_000)
            assert cache.asset_path("evil", "en-us").parent == tmp_path / "assets"
            stack.unpublish_asset("logo", "fr-fr")
            cache.sync()
            assert not french.exists() and english.exists()
            assert cache.asset_path("logo", "fr-fr") is None  # no fallback configured
            stack.delete_asset("logo", "en-us")
            cache.sync()
            assert cache.asset_path("logo", "en-us") is None and not english.exists()
            assert cache.assets.check().clean


def _project() -> Project:
    project = Project(environment_id=ENV_ID, languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text", "hero": "asset"})
    return project


def _article(project: Project, number: int, language: str, assets: list[dict[str, Any]]) -> None:
    project.upsert_variant(f"00000000-0000-4000-8000-{number:012d}", f"item_{number}",
                           "article", language, {"title": f"T{number}", "hero": assets})


@pytest.mark.parametrize("version", [1, 2])
def test_kontent_asset_elements(tmp_path: Path, version: int) -> None:
    project = _project()
    hero = kontent_asset(ENV_ID, "a1b2c3d4-0000-4000-8000-000000000001", "hero.jpg", 40_000,
                         "image/jpeg")
    other = kontent_asset(ENV_ID, "a1b2c3d4-0000-4000-8000-000000000002", "x.pdf", 8_000,
                          "application/pdf")
    _article(project, 1, "default", [hero])
    _article(project, 1, "es-ES", [hero])  # the same asset in both languages: one file
    _article(project, 2, "default", [hero, other])
    hero_id = "a1b2c3d4-0000-4000-8000-000000000001"
    other_id = "a1b2c3d4-0000-4000-8000-000000000002"
    removed: list[Any] = []
    with Emulator(project, access_token=None) as emu:
        provider = Kontent(ENV_ID, api_version=version, base_url=emu.base_url,
                           asset_base_url=emu.asset_base_url)
        with Cache(provider, path=tmp_path / "k.sqlite3",
                   assets=AssetPolicy(directory=tmp_path / "assets")) as cache, \
                signals.asset_file_removed.connected_to(
                    lambda sender, **kw: removed.append(kw), sender=cache):
            cache.sync()
            assert cache.assets.download().downloaded == 2
            path = cache.asset_path(hero_id)
            assert path.read_bytes() == served(hero["url"], 40_000)
            assert cache.asset_path(hero_id, "es-ES") == path  # one file in every language
            assert cache.asset_path(other_id).suffix == ".pdf"
            # Item 2 drops the PDF: no entry names it any more, so its file goes.
            _article(project, 2, "default", [hero])
            cache.sync()
            assert cache.asset_path(other_id) is None
            assert removed == [{"id": other_id, "locale": None}]
            project.delete_item("00000000-0000-4000-8000-000000000001")
            cache.sync()
            assert cache.asset_path(hero_id) == path  # item 2 still names it
            assert cache.assets.check().clean
