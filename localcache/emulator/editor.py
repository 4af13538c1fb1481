"""A space that changes by itself: for the example apps, so rows are seen to update live.

:class:`SpaceEditor` edits a :func:`~localcache.emulator.generate_space` space every few
seconds from a daemon thread, as an editorial team would: it retitles an article, rates one,
publishes a new one, deletes one, renames an author (the articles that link to the author are
then ``affected``) or retitles an asset. ``step()`` makes one edit at once, for tests.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from .space import Space

__all__ = ["SpaceEditor"]

_WORDS = ("fresh", "updated", "breaking", "revised", "new", "late", "quiet", "bright")


class SpaceEditor:
    """Edits ``space`` every ``interval`` seconds once :meth:`start` ran, until :meth:`stop`."""

    def __init__(self, space: Space, interval: float = 3.0, seed: int = 0) -> None:
        self.space = space
        self.interval = interval
        self.edits = 0
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SpaceEditor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="localcache-space-editor",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> SpaceEditor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()

    def step(self) -> str:
        """Make one edit; what it did, as a short sentence."""
        entries = self.space.published_entries()
        articles = sorted(i for i, e in entries.items() if _type(e) == "article")
        authors = sorted(i for i, e in entries.items() if _type(e) == "author")
        assets = sorted(self.space.published_assets())
        roll = self._random.random()
        self.edits += 1
        if not articles or roll < 0.15:
            return self._new_article(articles, authors, assets)
        chosen = self._random.choice(articles)
        if roll < 0.5:
            return self._retitle(chosen, entries[chosen])
        if roll < 0.65:
            fields = _fields(entries[chosen])
            fields["rating"] = {self.space.default_locale: self._random.randint(1, 5)}
            self.space.publish_entry(chosen, "article", fields)
            return f"rated article {chosen}"
        if roll < 0.75 and len(articles) > 5:
            self.space.delete_entry(chosen)
            return f"deleted article {chosen}"
        if roll < 0.9 and authors:
            author = self._random.choice(authors)
            fields = _fields(entries[author])
            fields["name"] = {self.space.default_locale: f"{self._word().title()} "
                                                         f"{self._random.randint(1, 99)}"}
            self.space.publish_entry(author, "author", fields)
            return f"renamed author {author}"
        if assets:
            asset = self._random.choice(assets)
            fields = _fields(self.space.published_assets()[asset])
            fields["title"] = {code: f"{self._word()} picture" for code in
                               (fields.get("title") or {self.space.default_locale: ""})}
            self.space.publish_asset(asset, fields)
            return f"retitled asset {asset}"
        return self._retitle(chosen, entries[chosen])

    def _word(self) -> str:
        return self._random.choice(_WORDS)

    def _retitle(self, entry_id: str, entry: dict[str, Any]) -> str:
        fields = _fields(entry)
        word = self._word()
        fields["title"] = {code: f"{word.title()}: {text}" if not text.startswith(
            word.title()) else text for code, text in (fields.get("title") or {}).items()}
        self.space.publish_entry(entry_id, "article", fields)
        return f"retitled article {entry_id}"

    def _new_article(self, articles: list[str], authors: list[str], assets: list[str]) -> str:
        number = self.edits
        entry_id = f"live{number:05d}x{self._random.randrange(16 ** 6):06x}"
        locales = [locale.code for locale in self.space.locales]
        fields: dict[str, Any] = {
            "title": {code: f"{self._word().title()} story {number} ({code})"
                      for code in locales},
            "slug": {locales[0]: f"story-{entry_id}"},
            "rating": {locales[0]: self._random.randint(1, 5)},
        }
        if authors:
            fields["author"] = {locales[0]: _link("Entry", self._random.choice(authors))}
        if assets:
            fields["image"] = {locales[0]: _link("Asset", self._random.choice(assets))}
        self.space.publish_entry(entry_id, "article", fields)
        return f"published article {entry_id}"


def _type(entry: dict[str, Any]) -> str:
    return str(entry["sys"]["contentType"]["sys"]["id"])


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    return {name: dict(values) for name, values in item.get("fields", {}).items()}


def _link(link_type: str, target: str) -> dict[str, Any]:
    return {"sys": {"type": "Link", "linkType": link_type, "id": target}}
