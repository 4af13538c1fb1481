"""The read side: records as an app sees them, and locale fallback read from the space.

Queries are built with peewee expressions from typed arguments; no caller string ever becomes
SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..model import LocaleInfo, RecordType
from .models import BoundModels

__all__ = ["LocaleChain", "Record", "read_asset", "read_batch", "read_entries", "read_entry"]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class LocaleChain:
    """The space's locales: which is the default, and where each one falls back to."""

    default: str | None = None
    fallbacks: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_locales(cls, locales: list[LocaleInfo]) -> LocaleChain:
        default = next((loc.code for loc in locales if loc.default), None)
        return cls(default, {loc.code: loc.fallback for loc in locales})

    def chain(self, locale: str | None) -> Iterator[str]:
        """``locale``, then its fallbacks in order (a cycle ends the chain)."""
        seen: set[str] = set()
        code = locale if locale is not None else self.default
        while code is not None and code not in seen:
            seen.add(code)
            yield code
            code = self.fallbacks.get(code)


@dataclass(frozen=True, slots=True)
class Record:
    """An entry or asset as stored. ``fields`` maps field name → locale → value."""

    type: RecordType
    id: str
    content_type: str | None
    revision: int
    created_at: str | None
    updated_at: str | None
    fields: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, compare=False)
    locales: LocaleChain = field(default_factory=LocaleChain, repr=False, compare=False)

    @classmethod
    def of(cls, record_type: RecordType, record_id: str, content_type: str | None,
           revision: int, created_at: str | None, updated_at: str | None,
           document: dict[str, Any], locales: LocaleChain) -> Record:
        """A record from its stored document (whose ``fields`` it exposes) and columns."""
        fields = document.get("fields")
        return cls(type=record_type, id=record_id, content_type=content_type, revision=revision,
                   created_at=created_at, updated_at=updated_at,
                   fields=fields if isinstance(fields, dict) else {}, raw=document,
                   locales=locales)

    def field(self, name: str, locale: str | None = None, default: Any = None) -> Any:
        """The value of ``name`` in ``locale`` (default: the space's default locale),
        following the space's fallback chain where the locale has no value."""
        by_locale = self.fields.get(name)
        if not isinstance(by_locale, dict):
            return default
        for code in self.locales.chain(locale):
            value = by_locale.get(code, _MISSING)
            if value is not _MISSING:
                return value
        return default

    def links(self, name: str, locale: str | None = None) -> list[tuple[str, str]]:
        """(link type, target id) pairs of a link or link-array field, after fallback."""
        value = self.field(name, locale)
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            sys = item.get("sys") if isinstance(item, dict) else None
            if isinstance(sys, dict) and sys.get("type") == "Link":
                out.append((str(sys.get("linkType")), str(sys.get("id"))))
        return out


def _record(row: Any, record_type: RecordType, locales: LocaleChain) -> Record:
    raw = json.loads(row.document)
    return Record.of(record_type, row.id, getattr(row, "content_type", None), row.revision,
                     row.created_at, row.updated_at, raw if isinstance(raw, dict) else {},
                     locales)


def _columns(model: Any) -> list[Any]:
    # The generated ``fields`` column is derived from ``raw``; reading it too would decode twice.
    return [f for name, f in model._meta.fields.items() if name != "fields"]


def read_entry(models: BoundModels, entry_id: str, locales: LocaleChain) -> Record | None:
    model = models.entry
    row = model.select(*_columns(model)).where(model.id == entry_id).first()
    return None if row is None else _record(row, "Entry", locales)


def read_asset(models: BoundModels, asset_id: str, locales: LocaleChain) -> Record | None:
    model = models.asset
    row = model.select(*_columns(model)).where(model.id == asset_id).first()
    return None if row is None else _record(row, "Asset", locales)


def read_entries(
    models: BoundModels,
    locales: LocaleChain,
    *,
    content_type: str | None = None,
    ids: list[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Record]:
    model = models.entry
    query = model.select(*_columns(model))
    if content_type is not None:
        query = query.where(model.content_type == content_type)
    if ids is not None:
        query = query.where(model.id.in_(list(ids)))
    query = query.order_by(model.id)
    if limit is not None:
        query = query.limit(int(limit)).offset(int(offset))
    elif offset:
        query = query.limit(-1).offset(int(offset))
    return [_record(row, "Entry", locales) for row in query]


def read_batch(models: BoundModels, record_type: RecordType, locales: LocaleChain, *,
               after: str | None, limit: int) -> list[Record]:
    """Up to ``limit`` records of a type, in id order, after the id ``after``: one batch of a
    scan whose memory stays flat (each batch in its own read transaction)."""
    model = models.entry if record_type == "Entry" else models.asset
    query = model.select(*_columns(model)).order_by(model.id).limit(limit)
    if after is not None:
        query = query.where(model.id > after)
    return [_record(row, record_type, locales) for row in query]
