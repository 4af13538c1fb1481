"""Locales served by fallback, as the vendors report them, through Cache.sync() and the emulator.

Contentstack: a locale published by fallback carries another language's content; its
``data.locale`` names that language, ``publish_details.locale`` where it is published, and the
store files it where it is published. Kontent.ai v1: a sync filtered by ``language`` follows
language fallbacks, so the first load must hold the variants served by fallback too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcache import Cache, ConfigurationError, Contentstack, Kontent
from localcache.emulator import Emulator, Project, Stack

TOKEN = "vendor-fallback-token"
ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"


# -- Contentstack ---------------------------------------------------------------------------

def _stack() -> Stack:
    """b1: en-us, and en-gb by fallback (en-us content); b2: en-us only; b3: its own en-gb."""
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us", "en-gb"])
    stack.publish_entry("b1", "blog", "en-us", {"title": "Color"})
    stack.publish_entry("b1", "blog", "en-gb", {"title": "Color"}, content_locale="en-us")
    stack.publish_entry("b2", "blog", "en-us", {"title": "Only in the US"})
    stack.publish_entry("b3", "blog", "en-gb", {"title": "Colour"})
    stack.publish_asset("a1", "en-us", {"title": "Logo"})
    stack.publish_asset("a1", "en-gb", {"title": "Logo"}, content_locale="en-us")
    return stack


def _contentstack(emu: Emulator, **filters: Any) -> Contentstack:
    return Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url, **filters)


def _titles(cache: Cache) -> dict[str, dict[str, Any]]:
    return {record.id: record.fields["title"] for record in cache.entries()}


def test_contentstack_init_for_a_locale_published_by_fallback(tmp_path: Path) -> None:
    with Emulator(_stack(), access_token=TOKEN) as emu, \
            Cache(_contentstack(emu, locale="en-gb"), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        assert _titles(cache) == {"b1": {"en-gb": "Color"}, "b3": {"en-gb": "Colour"}}
        assert cache.entry("b1").field("title", "en-gb") == "Color"
        logo = cache.asset("a1")
        assert logo is not None and logo.fields["title"] == {"en-gb": "Logo"}
        assert [locale.code for locale in cache.locales()] == ["en-gb"]


def test_contentstack_unpublishing_the_content_language_keeps_the_fallback(
        tmp_path: Path) -> None:
    stack = _stack()
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(_contentstack(emu), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        assert _titles(cache)["b1"] == {"en-us": "Color", "en-gb": "Color"}
        stack.unpublish_entry("b1", "en-us")
        stack.unpublish_asset("a1", "en-us")
        result = cache.sync()
        assert (result.entries.updated, result.entries.deleted) == (1, 0)
        assert _titles(cache)["b1"] == {"en-gb": "Color"}     # still published in en-gb
        logo = cache.asset("a1")
        assert logo is not None and logo.fields["title"] == {"en-gb": "Logo"}
        stack.unpublish_entry("b1", "en-gb")
        assert cache.sync().entries.deleted == 1
        assert cache.entry("b1") is None


# -- Kontent.ai v1, filtered by language -----------------------------------------------------

def _project() -> Project:
    """i0: default and es-ES; i1: default only (es-ES falls back to it); i2: es-ES only."""
    project = Project(environment_id=ENV_ID, languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text"})
    for number, languages in enumerate((("default", "es-ES"), ("default",), ("es-ES",))):
        for language in languages:
            project.upsert_variant(f"i{number}", f"item_{number}", "article", language,
                                   {"title": f"{number} {language}"})
    return project


def _languages(cache: Cache) -> dict[str, dict[str, str]]:
    """Item id -> {language: title} of every stored variant."""
    return {record.id: {language: element["value"]
                        for language, element in record.fields["title"].items()}
            for record in cache.entries()}


def test_kontent_v1_language_filter_loads_what_fallbacks_serve(tmp_path: Path) -> None:
    project = _project()
    with Emulator(project, access_token=None) as emu, \
            Cache(Kontent(ENV_ID, api_version=1, base_url=emu.base_url,
                          filters={"language": "es-ES"}), path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        # i1 has no es-ES variant: the es-ES sync reports its default variant, so it is loaded
        # too, filed under the language it is in.
        assert _languages(cache) == {"i0": {"es-ES": "0 es-ES"}, "i1": {"default": "1 default"},
                                     "i2": {"es-ES": "2 es-ES"}}
        project.upsert_variant("i1", "item_1", "article", "default", {"title": "1 edited"})
        project.upsert_variant("i0", "item_0", "article", "default", {"title": "0 edited"})
        result = cache.sync()             # i0's default variant is not served in es-ES
        assert (result.entries.added, result.entries.updated) == (0, 1)
        assert _languages(cache)["i1"] == {"default": "1 edited"}
        assert _languages(cache)["i0"] == {"es-ES": "0 es-ES"}


def test_kontent_v1_system_language_filter_ignores_fallbacks(tmp_path: Path) -> None:
    with Emulator(_project(), access_token=None) as emu, \
            Cache(Kontent(ENV_ID, api_version=1, base_url=emu.base_url,
                          filters={"system.language": "es-ES"}),
                  path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        assert _languages(cache) == {"i0": {"es-ES": "0 es-ES"}, "i2": {"es-ES": "2 es-ES"}}


@pytest.mark.parametrize("name", ["language[eq]", "system.language[in]"])
def test_kontent_language_filters_take_no_operator(name: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported sync filter"):
        Kontent(ENV_ID, api_version=1, filters={name: "es-ES"})
