"""The normalized vocabulary shared by providers, the sync engine and the store.

A provider turns each vendor response into a :class:`Page` whose :class:`Delta` items use the
store's (Contentful's) vocabulary: an upsert or a deletion of an ``Entry`` or an ``Asset``. The
engine applies a page and its :class:`ContinuationToken` in one transaction; the store reads
these types and nothing of HTTP. Nothing here imports another localcache module but the
standard library, so every layer can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ContentTypeInfo",
    "ContinuationToken",
    "Delta",
    "FieldInfo",
    "LocaleInfo",
    "Page",
    "PageSource",
    "RecordType",
    "StoreScope",
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


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of a content type, in the vocabulary every vendor maps onto.

    ``type`` is the vendor's own name for the field's type (Contentful ``Symbol``, Contentstack
    ``text``, Kontent.ai ``rich_text``). ``localized`` False means the vendor sends the field
    under the default locale only and it reads the same in every locale (Contentful's
    ``localized: false``, Contentstack's ``non_localizable``); Kontent.ai has no such flag."""

    id: str
    name: str = ""
    type: str = ""
    localized: bool = True
    required: bool = False


@dataclass(frozen=True, slots=True)
class ContentTypeInfo:
    """A content type's definition as the vendor lists it.

    ``display_field`` names the field that titles an entry (a UI's row title), None when the
    type has none. ``raw`` is the vendor's definition as sent, kept so nothing is lost (field
    validations, link types, options) and a later version can read more of it."""

    id: str
    name: str = ""
    display_field: str | None = None
    fields: tuple[FieldInfo, ...] = ()
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def field(self, field_id: str) -> FieldInfo | None:
        """The field ``field_id``, or None."""
        return next((f for f in self.fields if f.id == field_id), None)


@dataclass(slots=True)
class Page:
    """One response of a sync, parsed and validated, ready to apply as one transaction."""

    number: int
    deltas: list[Delta]
    next_token: ContinuationToken
    total: int | None = None
    skipped: int = 0
    source: PageSource | None = field(default=None, repr=False)
    # Content types the page reports changed (upserts) or deleted (ids), applied in its
    # transaction: Kontent.ai v2's ``types`` array. (Contentstack's content_type_deleted is a
    # ``whole_type`` delta, which removes the definition too.)
    content_types: list[ContentTypeInfo] = field(default_factory=list, repr=False)
    deleted_content_types: list[str] = field(default_factory=list, repr=False)
    # The page size the request asked for, where the client chose it (Contentful's initial
    # ``limit``, halved after "Response size too big"): kept in the sync state.
    limit: int | None = None

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
