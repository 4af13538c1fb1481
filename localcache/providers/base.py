"""What a provider hands the sync engine: normalized pages of deltas.

A provider knows HTTP and one vendor's wire format and nothing of the store. It turns each
response into a :class:`Page` whose :class:`Delta` items use the store's (Contentful's)
vocabulary: an upsert or a deletion of an ``Entry`` or an ``Asset``. The engine applies a page
and its :class:`ContinuationToken` in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import ConfigurationError

__all__ = [
    "ContinuationToken",
    "Delta",
    "LocaleInfo",
    "Page",
    "PageSource",
    "Provider",
    "RecordType",
    "StoreScope",
    "require_text",
]

RecordType = Literal["Entry", "Asset"]


@dataclass(frozen=True, slots=True)
class ContinuationToken:
    """Where the next request starts.

    ``kind`` is ``"page"`` while a sync is under way (more pages follow) and ``"sync"`` once
    it completed (the next sync is a delta from here). ``value`` is the vendor's opaque token,
    never a credential; URLs are rebuilt from it, so no credential is ever stored.
    """

    value: str
    kind: Literal["page", "sync"]

    def __repr__(self) -> str:
        return f"ContinuationToken(kind={self.kind!r}, value=<{len(self.value)} chars>)"


@dataclass(frozen=True, slots=True)
class Delta:
    """One item of a page: the latest state of one record, or its deletion.

    ``document`` is the record as stored: for Contentful exactly the CDA item (sys + fields with
    every locale); providers for other vendors build the same shape and keep their own
    payloads under ``document["vendor"]``.
    """

    record_type: RecordType
    id: str
    deleted: bool
    document: dict[str, Any] | None = None
    content_type: str | None = None
    revision: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    position: int | None = None
    # Vendors that publish one locale of a record at a time (Contentstack, Kontent.ai): the
    # delta concerns only ``locale``; ``document`` is then {"fields": {name: value}, "vendor":
    # the vendor's payload}, merged into the stored record (store/merge.py).
    locale: str | None = None
    # A whole content type was deleted (Contentstack's content_type_deleted): every entry of
    # ``content_type`` goes.
    whole_type: bool = False

    @property
    def merges(self) -> bool:
        return self.locale is not None or self.whole_type


@dataclass(frozen=True, slots=True)
class PageSource:
    """The page's items as the vendor sent them, as JSON text.

    When a delta's ``document`` is the vendor's item unchanged, ``Delta.position`` indexes it in
    the array at ``items_path``, and the store takes the record's JSON (and its columns, at the
    given paths) straight from SQLite's JSON parser instead of re-encoding the dict in Python:
    on an initial sync that is the difference between keeping up with the network or not.
    """

    text: str
    items_path: str
    id_path: str
    content_type_path: str
    revision_path: str
    created_path: str
    updated_path: str


@dataclass(frozen=True, slots=True)
class LocaleInfo:
    """A locale of the space; fallbacks chain through ``fallback``."""

    code: str
    name: str = ""
    default: bool = False
    fallback: str | None = None
    optional: bool = False


@dataclass(slots=True)
class Page:
    """One response of a sync, parsed and validated, ready to apply as one transaction."""

    number: int
    deltas: list[Delta]
    next_token: ContinuationToken
    total: int | None = None
    skipped: int = 0
    source: PageSource | None = field(default=None, repr=False)

    @property
    def last(self) -> bool:
        """True when this page ends the sync (its token is a sync token)."""
        return self.next_token.kind == "sync"


@dataclass(frozen=True, slots=True)
class StoreScope:
    """What a store file belongs to; a store is never synced from another scope."""

    provider: str
    space: str
    environment: str

    @property
    def file_stem(self) -> str:
        return f"{self.space}-{self.environment}"


@runtime_checkable
class Provider(Protocol):
    """A vendor's sync protocol, seen from the engine."""

    @property
    def scope(self) -> StoreScope: ...

    def fetch_locales(self) -> list[LocaleInfo] | None:
        """The space's locales with their fallbacks, read from the vendor (never guessed).

        None when the vendor does not list them: the store then learns the codes the records
        use, without fallbacks."""
        ...

    def pages(self, token: ContinuationToken | None) -> Iterator[Page]:
        """Yield pages from ``token`` (``None``: an initial sync) until a sync token arrives."""
        ...

    def close(self) -> None: ...


def require_text(value: Any, message: str) -> str:
    """A provider's required setting: a non-empty string, or a ConfigurationError."""
    if not value or not isinstance(value, str):
        raise ConfigurationError(message)
    return value
