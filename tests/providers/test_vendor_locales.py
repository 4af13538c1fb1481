"""Locale fallback for every vendor, through Cache.sync() and the emulator.

Contentstack's CDA lists no languages, so the app names the chains (``fallbacks=``) and the
store keeps them with the codes it learns. Kontent.ai's Delivery API lists languages with their
default but no fallbacks: every language falls back to the default language, as Delivery does,
unless ``fallbacks=`` says otherwise. Chains of any length resolve; a cycle ends the chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcache import Cache, ConfigurationError, Contentstack, Kontent
from localcache.emulator import Emulator, Project, Stack

TOKEN = "vendor-locales-token"
ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"


def _fallbacks(cache: Cache) -> dict[str, str | None]:
    return {locale.code: locale.fallback for locale in cache.locales()}


# -- Contentstack ---------------------------------------------------------------------------

def _stack() -> Stack:
    """us: en-us only; ca: en-us and fr-ca; nobody has fr-fr content (it is only a step)."""
    stack = Stack(api_key="blt_api", environment="production",
                  locales=["en-us", "fr-fr", "fr-ca"])
    stack.publish_entry("us", "blog", "en-us", {"title": "Color"})
    stack.publish_entry("ca", "blog", "en-us", {"title": "Hello"})
    stack.publish_entry("ca", "blog", "fr-ca", {"title": "Allo"})
    return stack


def _contentstack(emu: Emulator, **options: Any) -> Contentstack:
    return Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url, **options)


def test_contentstack_fallbacks_resolve_a_chain_of_three(tmp_path: Path) -> None:
    fallbacks = {"fr-ca": "fr-fr", "fr-fr": "en-us"}
    with Emulator(_stack(), access_token=TOKEN) as emu, \
            Cache(_contentstack(emu, fallbacks=fallbacks), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        # fr-fr holds no content yet: it is a locale of the stack all the same, and the
        # chain fr-ca -> fr-fr -> en-us runs through it.
        assert _fallbacks(cache) == {"en-us": None, "fr-fr": "en-us", "fr-ca": "fr-fr"}
        assert [loc.code for loc in cache.locales() if loc.default] == ["en-us"]
        us = cache.entry("us")
        assert us is not None
        assert us.field("title", "fr-ca") == us.field("title", "fr-fr") == "Color"
        ca = cache.entry("ca")
        assert ca is not None and ca.field("title", "fr-ca") == "Allo"
        assert ca.field("title", "fr-fr") == ca.field("title") == "Hello"


def test_contentstack_fallback_cycle_ends_the_chain(tmp_path: Path) -> None:
    fallbacks = {"fr-ca": "fr-fr", "fr-fr": "fr-ca"}
    with Emulator(_stack(), access_token=TOKEN) as emu, \
            Cache(_contentstack(emu, fallbacks=fallbacks), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        us, ca = cache.entry("us"), cache.entry("ca")
        assert us is not None and ca is not None
        assert us.field("title", "fr-ca") is None       # fr-ca, fr-fr, then the cycle: done
        assert ca.field("title", "fr-fr") == "Allo"     # fr-fr, then fr-ca
        assert us.field("title", "en-us") == "Color"


def test_contentstack_without_fallbacks_learns_codes_only(tmp_path: Path) -> None:
    """Today's behaviour stays when the app names no fallbacks; naming them later (an app
    update) gives the stored locales their chains on the next sync, with nothing new to learn."""
    stack = _stack()
    path = tmp_path / "cs.sqlite3"
    with Emulator(stack, access_token=TOKEN) as emu:
        with Cache(_contentstack(emu), path=path) as cache:
            cache.sync()
            assert _fallbacks(cache) == {"en-us": None, "fr-ca": None}
            us = cache.entry("us")
            assert us is not None and us.field("title", "fr-ca") is None
        with Cache(_contentstack(emu, fallbacks={"fr-ca": "en-us"}), path=path) as cache:
            assert not cache.sync().initial
            assert _fallbacks(cache) == {"en-us": None, "fr-ca": "en-us"}
            us = cache.entry("us")
            assert us is not None and us.field("title", "fr-ca") == "Color"
        with Cache(_contentstack(emu), path=path) as cache:     # and dropping them again
            cache.sync()
            assert _fallbacks(cache) == {"en-us": None, "fr-ca": None}


# -- Kontent.ai -----------------------------------------------------------------------------

def _project(languages: tuple[str, ...] = ("en-US", "es-ES")) -> Project:
    """i-en: the default language only; i-es: the default language and es-ES."""
    project = Project(environment_id=ENV_ID, languages=list(languages))
    project.add_type("article", elements={"title": "text"})
    project.upsert_variant("i-en", "item_en", "article", "en-US", {"title": "Only English"})
    project.upsert_variant("i-es", "item_es", "article", "en-US", {"title": "English"})
    project.upsert_variant("i-es", "item_es", "article", "es-ES", {"title": "Español"})
    return project


def _kontent(emu: Emulator, **options: Any) -> Kontent:
    return Kontent(ENV_ID, base_url=emu.base_url, **options)


def _title(cache: Cache, item_id: str, language: str | None = None) -> Any:
    record = cache.entry(item_id)
    assert record is not None
    element = record.field("title", language)
    return None if element is None else element["value"]


@pytest.mark.parametrize("version", [1, 2])
def test_kontent_languages_fall_back_to_the_default_language(tmp_path: Path,
                                                             version: int) -> None:
    project = _project()
    with Emulator(project, access_token=None) as emu, \
            Cache(_kontent(emu, api_version=version), path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        assert _fallbacks(cache) == {"en-US": None, "es-ES": "en-US"}
        assert [loc.code for loc in cache.locales() if loc.default] == ["en-US"]
        # Not translated into es-ES: it reads the default language's value, as Delivery
        # serves it.
        assert _title(cache, "i-en", "es-ES") == "Only English"
        assert _title(cache, "i-es", "es-ES") == "Español"
        assert _title(cache, "i-es") == "English"
        project.add_language("fr-FR")            # a new language falls back to the default
        cache.sync()
        assert _fallbacks(cache)["fr-FR"] == "en-US"
        assert _title(cache, "i-es", "fr-FR") == "English"


def test_kontent_fallbacks_resolve_a_chain_of_three(tmp_path: Path) -> None:
    project = _project(("en-US", "es-ES", "es-MX", "ca-ES"))
    with Emulator(project, access_token=None) as emu, \
            Cache(_kontent(emu, fallbacks={"es-MX": "es-ES"}),
                  path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        # es-MX -> es-ES -> en-US; ca-ES, which the app did not name, -> en-US.
        assert _fallbacks(cache) == {"en-US": None, "ca-ES": "en-US", "es-ES": "en-US",
                                     "es-MX": "es-ES"}
        assert _title(cache, "i-es", "es-MX") == "Español"
        assert _title(cache, "i-en", "es-MX") == "Only English"
        assert _title(cache, "i-es", "ca-ES") == "English"


def test_kontent_fallback_cycle_ends_the_chain(tmp_path: Path) -> None:
    project = _project(("en-US", "es-ES", "es-MX"))
    with Emulator(project, access_token=None) as emu, \
            Cache(_kontent(emu, fallbacks={"es-MX": "es-ES", "es-ES": "es-MX"}),
                  path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        assert _title(cache, "i-en", "es-MX") is None   # es-MX, es-ES, then the cycle: done
        assert _title(cache, "i-es", "es-MX") == "Español"
        assert _title(cache, "i-en") == "Only English"


# -- fallbacks= is checked when the provider is built ------------------------------------------

@pytest.mark.parametrize(("fallbacks", "named"), [
    ({"fr-ca": ""}, "'fr-ca'"),
    ({"fr-ca": None}, "'fr-ca'"),
    ({"": "en-us"}, "''"),
    ({1: "en-us"}, "1"),
    ({"fr-ca": ["fr-fr", "en-us"]}, "'fr-ca'"),
    (["fr-ca", "fr-fr"], "list"),
    ("fr-ca:fr-fr", "str"),
])
@pytest.mark.parametrize("vendor", ["contentstack", "kontent"])
def test_bad_fallbacks_are_a_configuration_error(vendor: str, fallbacks: Any,
                                                 named: str) -> None:
    with pytest.raises(ConfigurationError, match="fallbacks") as raised:
        if vendor == "contentstack":
            Contentstack("blt_api", TOKEN, "production", fallbacks=fallbacks)
        else:
            Kontent(ENV_ID, fallbacks=fallbacks)
    assert named in str(raised.value)
