"""Sync pages saved as JSON files, replayed as a provider.

For teams that keep content JSON in their repository: ``localcache snapshot create --from-pages
DIR`` feeds the files through the same parser and the same sync engine as a live sync, so a
snapshot built from them is exactly what syncing those pages would have produced. Files are
read in name order; a file whose name contains ``locales`` is the space's ``/locales`` response.
A recording may hold several syncs one after the other (an initial sync, then deltas): each
page carrying ``nextSyncUrl`` ends one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, PageError
from ..model import ContentTypeInfo, ContinuationToken, LocaleInfo, Page, StoreScope
from .contentful import Contentful
from .http import HttpResponse

__all__ = ["RecordedPages"]

_JSON = {"Content-Type": "application/json"}


class RecordedPages:
    """A Contentful space as recorded sync pages in ``directory``."""

    name = "contentful"

    def __init__(self, directory: str | Path, space_id: str | None = None,
                 environment: str | None = None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigurationError(f"{str(self.directory)!r} is not a directory of pages")
        files = sorted(self.directory.glob("*.json"))
        self._locales_file = next((f for f in files if "locales" in f.name), None)
        self._pages = [f for f in files if f != self._locales_file]
        if not self._pages:
            raise ConfigurationError(f"no sync pages (*.json) in {str(self.directory)!r}")
        first = self._read(self._pages[0], 1)
        space = space_id or _link_of(first, "space")
        if not space:
            raise ConfigurationError(
                "the pages do not name their space; pass the space id explicitly")
        self.space_id: str = space
        self.environment = environment or _link_of(first, "environment") or "master"
        self._consumed = 0

    def __repr__(self) -> str:
        return f"RecordedPages({str(self.directory)!r}, space_id={self.space_id!r})"

    @property
    def scope(self) -> StoreScope:
        return StoreScope("contentful", self.space_id, self.environment)

    @property
    def exhausted(self) -> bool:
        """True once every recorded page has been handed out."""
        return self._consumed >= len(self._pages)

    def close(self) -> None:
        pass

    def fetch_locales(self) -> list[LocaleInfo] | None:
        if self._locales_file is None:
            return None  # the store learns the codes the pages use
        return Contentful.parse_locales(
            HttpResponse(200, _JSON, self._locales_file.read_bytes(), None))

    def fetch_content_types(self) -> list[ContentTypeInfo] | None:
        return None  # recordings hold sync pages only: the store keeps what it has

    def pages(self, token: ContinuationToken | None) -> Iterator[Page]:
        number = 0
        while self._consumed < len(self._pages):
            path = self._pages[self._consumed]
            number += 1
            try:
                page = Contentful.parse_page(HttpResponse(200, _JSON, path.read_bytes(), None),
                                             number)
            except PageError as exc:
                raise PageError(f"{path.name}: {exc}", page=number) from None
            self._consumed += 1
            yield page
            if page.last:
                return
        raise PageError(f"the last recorded page ({self._pages[-1].name}) has no nextSyncUrl; "
                        "the recording is incomplete", page=number)

    @staticmethod
    def _read(path: Path, number: int) -> dict[str, Any]:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise PageError(f"{path.name}: cannot read the recorded page: {exc}",
                            page=number) from None
        if not isinstance(data, dict):
            raise PageError(f"{path.name}: not a sync page", page=number)
        return data


def _link_of(page: dict[str, Any], kind: str) -> str | None:
    for item in page.get("items") or []:
        sys = item.get("sys") if isinstance(item, dict) else None
        link = sys.get(kind) if isinstance(sys, dict) else None
        target = link.get("sys", {}).get("id") if isinstance(link, dict) else None
        if isinstance(target, str) and target:
            return target
    return None
