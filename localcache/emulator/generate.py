"""Deterministic synthetic spaces for demos, tests and benchmarks.

The same arguments always produce byte-identical content (ids, text, timestamps), so a benchmark
run is comparable with the last one and a failing test can be replayed.  The content model is
small but exercises what a sync client must handle: localized and non-localized fields, a
locale fallback chain, arrays, entry links and asset links, and some revisions above 1.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from .space import Locale, Space, paused_gc

__all__ = ["generate_space"]

_BASE_TIME = datetime(2024, 1, 1, tzinfo=timezone.utc)
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "to",
    "vi",
    "de",
    "en",
    "fa",
    "go",
    "hu",
    "ir",
    "ja",
    "ke",
    "la",
    "mo",
    "nu",
    "or",
    "pe",
    "qui",
    "ra",
    "si",
    "tu",
    "ul",
    "ve",
    "wa",
    "xi",
    "yo",
)
_TAGS = ("news", "guide", "opinion", "release", "howto", "interview", "review", "event")

_ARTICLE_FIELDS: list[dict[str, Any]] = [
    {"id": "title", "name": "Title", "type": "Symbol", "localized": True, "required": True},
    {"id": "slug", "name": "Slug", "type": "Symbol", "localized": False, "required": True},
    {"id": "body", "name": "Body", "type": "Text", "localized": True},
    {"id": "tags", "name": "Tags", "type": "Array", "items": {"type": "Symbol"}},
    {"id": "author", "name": "Author", "type": "Link", "linkType": "Entry"},
    {"id": "image", "name": "Image", "type": "Link", "linkType": "Asset"},
    {"id": "rating", "name": "Rating", "type": "Integer"},
    {"id": "publishedAt", "name": "Published at", "type": "Date"},
]
_AUTHOR_FIELDS: list[dict[str, Any]] = [
    {"id": "name", "name": "Name", "type": "Symbol", "localized": False, "required": True},
    {"id": "bio", "name": "Biography", "type": "Text", "localized": True},
]


class _Text:
    """Cheap pseudo-prose: slices of one seeded corpus instead of per-field word sampling.

    Sampling words for every field of 100k entries costs seconds; slicing a prebuilt corpus at
    random word boundaries costs microseconds and still gives distinct, realistic-size text.
    """

    def __init__(self, rng: random.Random) -> None:
        words = ["".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(800)]
        self._corpus = " ".join(rng.choices(words, k=150_000))
        self._random = rng.random

    def take(self, size: int) -> str:
        corpus = self._corpus
        size = max(1, size)
        start = corpus.find(" ", int(self._random() * max(1, len(corpus) - size - 32))) + 1
        return corpus[start : start + size].rstrip() or "x"


def _new_id(rng: random.Random, taken: set[str]) -> str:
    """22 alphanumeric characters, like the ids Contentful assigns."""
    while True:
        candidate = base64.b64encode(rng.randbytes(17), altchars=b"Xy")[:22].decode("ascii")
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _link(link_type: str, target: str) -> dict[str, Any]:
    return {"sys": {"type": "Link", "linkType": link_type, "id": target}}


def _locales(codes: Sequence[str]) -> list[Locale]:
    """First code is the default; each other locale falls back to the one before it."""
    if not codes:
        raise ValueError("at least one locale is required")
    return [
        Locale(code, default=index == 0, fallback=codes[index - 1] if index else None)
        for index, code in enumerate(codes)
    ]


def generate_space(
    entries: int = 500,
    assets: int = 50,
    locales: Sequence[str] = ("en-US", "de-DE", "fr-FR"),
    field_bytes: int = 300,
    seed: int = 0,
    space_id: str = "demo",
    environment: str = "master",
) -> Space:
    """A populated space: ``entries`` entries (about 1 in 10 authors, the rest articles).

    Every localized text field is filled in every locale with about ``field_bytes`` characters
    (titles are shorter), so an article carries roughly ``field_bytes * len(locales)`` bytes of
    text.  Articles link to an author and, when ``assets`` > 0, to an asset.  About one article
    in twenty is published twice, so revisions above 1 occur.
    """
    if entries < 0 or assets < 0:
        raise ValueError("entries and assets must be >= 0")
    with paused_gc():
        return _generate(entries, assets, list(locales), field_bytes, seed, space_id, environment)


def _generate(
    entries: int,
    assets: int,
    codes: list[str],
    field_bytes: int,
    seed: int,
    space_id: str,
    environment: str,
) -> Space:
    rng = random.Random(seed)
    text = _Text(rng)
    default = codes[0] if codes else ""
    space = Space(space_id, environment, _locales(codes), name=f"Generated space {space_id}")
    space.add_content_type(
        "author",
        name="Author",
        fields=_AUTHOR_FIELDS,
        display_field="name",
        description="A person who writes articles.",
        at=_BASE_TIME,
    )
    space.add_content_type(
        "article",
        name="Article",
        fields=_ARTICLE_FIELDS,
        display_field="title",
        description="A localized article with an author and a hero image.",
        at=_BASE_TIME,
    )
    taken: set[str] = set()
    clock = iter(_BASE_TIME + timedelta(seconds=step) for step in range(1 << 40))

    asset_ids: list[str] = []
    for number in range(assets):
        asset_id = _new_id(rng, taken)
        ext, mime = ("png", "image/png") if number % 3 == 0 else ("jpg", "image/jpeg")
        file_name = f"image-{number}.{ext}"
        digest = f"{rng.getrandbits(128):032x}"
        file = {
            "url": f"//images.ctfassets.net/{space_id}/{asset_id}/{digest}/{file_name}",
            "fileName": file_name,
            "contentType": mime,
            "details": {
                "size": rng.randint(10_000, 2_000_000),
                "image": {"width": rng.randint(200, 4000), "height": rng.randint(200, 3000)},
            },
        }
        space.publish_asset(
            asset_id,
            {
                "title": {code: text.take(40) for code in codes},
                "description": {code: text.take(field_bytes // 3) for code in codes},
                "file": {code: file for code in codes},
            },
            at=next(clock),
        )
        asset_ids.append(asset_id)

    author_count = 0 if entries == 0 else max(1, entries // 10)
    author_ids: list[str] = []
    for _ in range(author_count):
        author_id = _new_id(rng, taken)
        space.publish_entry(
            author_id,
            "author",
            {
                "name": {default: text.take(24).title()},
                "bio": {code: text.take(field_bytes) for code in codes},
            },
            at=next(clock),
        )
        author_ids.append(author_id)

    for number in range(entries - author_count):
        article_id = _new_id(rng, taken)
        fields: dict[str, dict[str, Any]] = {
            "title": {code: text.take(60) for code in codes},
            "slug": {default: f"article-{number}"},
            "body": {code: text.take(field_bytes) for code in codes},
            "tags": {default: rng.sample(_TAGS, rng.randint(0, 3))},
            "author": {default: _link("Entry", rng.choice(author_ids))},
            "rating": {default: rng.randint(1, 5)},
            "publishedAt": {default: (_BASE_TIME - timedelta(days=number % 900)).isoformat()},
        }
        if asset_ids:
            fields["image"] = {default: _link("Asset", rng.choice(asset_ids))}
        space.publish_entry(article_id, "article", fields, at=next(clock))
        if number % 20 == 7:
            fields["title"] = {code: text.take(60) for code in codes}
            space.publish_entry(article_id, "article", fields, at=next(clock))
    return space
