"""The in-memory space model and the synthetic space generator (no sockets)."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone

import pytest

from localcache.emulator import Locale, Space, generate_space

from .helpers import article, make_space

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_revision_counts_publishes_and_restarts_after_delete() -> None:
    space = make_space(articles=1, authors=1, assets=1)
    assert space.publish_entry("article-000", "article", article("b")) == 2
    space.unpublish_entry("article-000")
    assert "article-000" not in space.published_entries()
    assert space.publish_entry("article-000", "article", article("c")) == 3
    created = space.published_entries()["article-000"]["sys"]["createdAt"]
    space.delete_entry("article-000")
    assert space.publish_entry("article-000", "article", article("d")) == 1
    reborn = space.published_entries()["article-000"]["sys"]
    assert reborn["createdAt"] > created
    assert reborn["createdAt"] == reborn["updatedAt"]
    space.delete_asset("asset-0")
    assert space.publish_asset("asset-0", {"title": {"en-US": "again"}}) == 1


def test_timestamps_are_strictly_increasing_and_pinnable() -> None:
    space = make_space(articles=0, authors=0, assets=0)
    stamps = []
    for number in range(20):
        space.publish_entry(f"e{number}", "article", article("x"))
        stamps.append(space.published_entries()[f"e{number}"]["sys"]["updatedAt"])
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(TIMESTAMP.match(stamp) for stamp in stamps)
    pinned = datetime(2020, 2, 29, 12, 30, 1, 250_000, tzinfo=timezone.utc)
    space.publish_entry("pinned", "article", article("x"), at=pinned)
    assert space.published_entries()["pinned"]["sys"]["updatedAt"] == "2020-02-29T12:30:01.250Z"


def test_published_items_are_deep_copies() -> None:
    space = make_space(articles=1, authors=0, assets=1)
    entries = space.published_entries()
    entries["article-000"]["fields"]["title"]["en-US"] = "mutated"
    assert space.published_entries()["article-000"]["fields"]["title"]["en-US"] == "Article 0"
    assert set(space.published_assets()) == {"asset-0"}


def test_invalid_operations_are_refused() -> None:
    space = make_space(articles=1, authors=1, assets=0)
    with pytest.raises(KeyError):
        space.unpublish_entry("missing")
    with pytest.raises(KeyError):
        space.delete_asset("missing")
    with pytest.raises(ValueError, match="content type"):
        space.publish_entry("article-000", "author", {"name": {"en-US": "x"}})
    with pytest.raises(ValueError, match="unknown locales"):
        space.publish_entry("x", "article", {"title": {"xx-XX": "?"}})
    with pytest.raises(TypeError):
        space.publish_entry("x", "article", {"title": "not per-locale"})  # type: ignore[dict-item]
    space.unpublish_entry("author-0")
    space.unpublish_entry("author-0")  # already unpublished: nothing to do
    space.delete_entry("author-0")
    with pytest.raises(KeyError):
        space.delete_entry("author-0")


@pytest.mark.parametrize(
    "locales",
    [
        [],
        [Locale("en-US")],
        [Locale("en-US", default=True), Locale("de-DE", default=True)],
        [Locale("en-US", default=True), Locale("en-US")],
        [Locale("en-US", default=True), Locale("de-DE", fallback="xx")],
        [Locale("en-US", default=True, fallback="de-DE"), Locale("de-DE")],
        [
            Locale("en-US", default=True),
            Locale("de-DE", fallback="fr-FR"),
            Locale("fr-FR", fallback="de-DE"),
        ],
    ],
)
def test_locale_validation(locales: list[Locale]) -> None:
    with pytest.raises(ValueError):
        Space("demo", "master", locales)


def test_concurrent_mutations_keep_every_change() -> None:
    space = make_space(articles=0, authors=0, assets=0)

    def writer(prefix: str) -> None:
        for number in range(200):
            space.publish_entry(f"{prefix}-{number}", "article", article("x"))

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(space.published_entries()) == 800
    assert space.head == 800


def test_generate_space_is_deterministic_and_complete() -> None:
    first = generate_space(entries=60, assets=5, seed=3)
    second = generate_space(entries=60, assets=5, seed=3)
    other = generate_space(entries=60, assets=5, seed=4)
    assert first.published_entries() == second.published_entries()
    assert first.published_assets() == second.published_assets()
    assert first.published_entries() != other.published_entries()
    entries = first.published_entries()
    assert len(entries) == 60 and len(first.published_assets()) == 5
    assert [locale.code for locale in first.locales] == ["en-US", "de-DE", "fr-FR"]
    assert [locale.fallback for locale in first.locales] == [None, "en-US", "de-DE"]
    types = {item["sys"]["contentType"]["sys"]["id"] for item in entries.values()}
    assert types == {"article", "author"}
    articles = [
        item for item in entries.values() if item["sys"]["contentType"]["sys"]["id"] == "article"
    ]
    assert any(item["sys"]["revision"] == 2 for item in articles)
    for item in articles:
        fields = item["fields"]
        assert set(fields["body"]) == {"en-US", "de-DE", "fr-FR"}
        assert 250 <= len(fields["body"]["de-DE"]) <= 300
        assert fields["author"]["en-US"]["sys"]["id"] in entries
        assert fields["image"]["en-US"]["sys"]["id"] in first.published_assets()
        assert re.fullmatch(r"[A-Za-z0-9]{22}", item["sys"]["id"])


def test_generate_space_options() -> None:
    space = generate_space(
        entries=1, assets=0, locales=("en-GB",), field_bytes=50, space_id="s", environment="e"
    )
    (only,) = space.published_entries().values()
    assert only["sys"]["contentType"]["sys"]["id"] == "author"
    assert only["sys"]["space"]["sys"]["id"] == "s"
    assert only["sys"]["environment"]["sys"]["id"] == "e"
    assert space.default_locale == "en-GB"
    assert generate_space(entries=0, assets=0).published_entries() == {}
