"""In-memory Contentstack stack: entries and assets published one locale at a time.

Contentstack's Synchronization API reports events per (entry or asset, locale): publishing the
French version of an entry is one ``entry_published`` item carrying only the French record.  So
this model keeps one record per (kind, uid, locale) and one event history per such key, and a
``content_type_deleted`` event per deleted content type.  The locale of a key is where the record
is published (``publish_details.locale``).  A locale published by fallback carries another
language's content, and its ``data.locale`` names that language (``content_locale=``), as a live
recording of the CDA shows; unpublish and delete items name the published locale.  Content type
definitions (what the CDA's ``GET /v3/content_types`` lists) are kept by uid; publishing under
a type never defined gives it Contentstack's default definition (the title field).

Every mutation takes the one lock, appends an event to a global log stamped with a sequence
number, and renders the event's sync item to bytes right away.  The protocol module
(``contentstack.py``) answers every page of a sync "as of" a fixed sequence number, walking the
log in sequence order, so mutations between page requests can neither skip nor repeat an item;
they arrive in the next delta.  Sequence order is also event order, which matters for the one
order-sensitive item: a ``content_type_deleted`` precedes entries published later under a
re-created content type of the same uid.

Event histories are tuples of tuples (as in ``changelog.py``) so the garbage collector can leave
them alone in large stacks.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import quote

from .space import format_timestamp, paused_gc

__all__ = [
    "ASSET",
    "ASSETS_UID",
    "CONTENT_TYPE",
    "ENTRY",
    "EVENT_TYPES",
    "Event",
    "Stack",
    "SyncPage",
    "to_ms",
]

ENTRY = "entry"
ASSET = "asset"
CONTENT_TYPE = "content_type"
ASSETS_UID = "sys_assets"
"""The ``content_type_uid`` Contentstack gives asset items."""

EVENT_TYPES = (
    "entry_published",
    "entry_unpublished",
    "entry_deleted",
    "asset_published",
    "asset_unpublished",
    "asset_deleted",
    "content_type_deleted",
)

Key = tuple[str, str, str]
"""(kind, uid, locale); kind is "entry", "asset" or "content_type" (whose locale is "")."""

Event = tuple[int, str, str, str, int, bytes]
"""(seq, type, content_type_uid, locale, event_ms, item): one change and its rendered item.

``type`` is one of :data:`EVENT_TYPES`, or "" for a silent removal: entries that vanish with
their content type are covered by the ``content_type_deleted`` item and get no item of their own.
"""
SEQ: Final = 0
TYPE: Final = 1
CT_UID: Final = 2
LOCALE: Final = 3
EVENT_MS: Final = 4
ITEM: Final = 5

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SYSTEM_KEYS = frozenset(
    {
        "uid",
        "locale",
        "_version",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "publish_details",
    }
)

_Record = tuple[str, int, str, bool]
"""(content_type_uid, _version, created_at, published) of one (kind, uid, locale)."""


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; naive datetimes are UTC, as Contentstack's clock is."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _blt(*parts: str) -> str:
    """A deterministic Contentstack-looking uid ("blt" + 16 hex digits)."""
    return "blt" + hashlib.sha1("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SyncPage:
    """A slice of a sync: rendered items, the sequence number of the last one, whether more
    follow, and (when asked for) how many items the whole sync has."""

    items: list[bytes]
    last: int | None
    more: bool
    total: int | None


class Stack:
    """One environment (and branch) of a Contentstack stack, mutable while being served."""

    def __init__(
        self,
        api_key: str = "blt_api",
        environment: str = "production",
        locales: Iterable[str] = ("en-us",),
        branch: str = "main",
    ) -> None:
        codes = list(locales)
        if not codes or len(set(codes)) != len(codes) or not all(codes):
            raise ValueError(f"a stack needs distinct, non-empty locale codes, got {codes}")
        if not api_key or not environment or not branch:
            raise ValueError("api_key, environment and branch must be non-empty")
        self.api_key = api_key
        self.environment = environment
        self.branch = branch
        self.locales: tuple[str, ...] = tuple(codes)
        self.environment_uid = _blt("environment", api_key, environment)
        """What ``publish_details.environment`` carries: the CDA gives the uid, not the name."""
        self.user_uid = _blt("user", api_key)
        # Signs sync tokens: tokens of another Stack (e.g. a restarted emulator) are refused.
        self.token_secret = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._log: list[tuple[Key, int]] = []  # seq - 1 -> (key, index in its history)
        self._history: dict[Key, tuple[Event, ...]] = {}
        self._records: dict[Key, _Record] = {}
        self._entry_types: dict[str, tuple[str, int]] = {}  # uid -> (content type, locales)
        # uid -> the definition as the CDA's content types endpoint renders it
        self._content_types: dict[str, dict[str, Any]] = {}
        self._last_ms = 0


    # -- mutations ---------------------------------------------------------------------------

    def publish_entry(
        self,
        uid: str,
        content_type_uid: str,
        locale: str,
        fields: Mapping[str, Any],
        *,
        at: datetime | None = None,
        content_locale: str | None = None,
    ) -> int:
        """Publish one locale of an entry; returns that locale's new ``_version``.

        ``fields`` are the entry's values in this locale (``title`` defaults to the uid, as every
        Contentstack entry has one).  An entry keeps its content type until every locale of it
        is deleted.  ``content_locale`` publishes ``locale`` by fallback: the content is that
        other language's, so the item's ``data.locale`` names it while
        ``publish_details.locale`` stays ``locale``, as the CDA reports such a publication.
        """
        self._check(uid, locale, content_locale)
        if not content_type_uid or content_type_uid == ASSETS_UID:
            raise ValueError(f"entry {uid!r}: invalid content type uid {content_type_uid!r}")
        values = self._values(uid, fields)
        values.setdefault("title", uid)
        values.setdefault("tags", [])
        ordered = {"title": values.pop("title"), **values}
        # Encode outside the lock: the expensive part, and it fails early on bad values.
        head = _json(ordered)[:-1]
        ct_json = _json(content_type_uid)
        with self._lock:
            current = self._entry_types.get(uid)
            if current is not None and current[0] != content_type_uid:
                raise ValueError(
                    f"entry {uid!r} has content type {current[0]!r}, not {content_type_uid!r}; "
                    "delete its locales first"
                )
            key = (ENTRY, uid, locale)
            stamp, ms = self._stamp(at)
            version, created = self._bump(key, stamp)
            if key not in self._records:  # a new locale of this entry
                count = current[1] if current is not None else 0
                self._entry_types[uid] = (content_type_uid, count + 1)
            self._records[key] = (content_type_uid, version, created, True)
            if content_type_uid not in self._content_types:  # Contentstack needs one: a default
                self._define(content_type_uid, None, None, "title", "", stamp)
            data = (
                f'{head},"locale":{_json(content_locale or locale)},"uid":{_json(uid)},'
                f'"created_by":"{self.user_uid}","updated_by":"{self.user_uid}",'
                f'"created_at":"{created}","updated_at":"{stamp}","ACL":{{}},'
                f'"_version":{version},"_in_progress":false,'
                f'"publish_details":{self._details(locale, stamp)}}}'
            )
            self._append(key, "entry_published", content_type_uid, ms, stamp, ct_json, data)
            return version

    def publish_asset(
        self,
        uid: str,
        locale: str,
        fields: Mapping[str, Any],
        *,
        at: datetime | None = None,
        content_locale: str | None = None,
    ) -> int:
        """Publish one locale of an asset; returns that locale's new ``_version``.

        Missing file attributes get the CDA's shapes: ``filename`` defaults to the title (or
        uid), ``url`` to an images.contentstack.io URL (the file name percent-encoded; the
        emulator serves its bytes under ``/files/``), ``file_size`` is a string.
        ``content_locale`` publishes by fallback, as for :meth:`publish_entry`.
        """
        self._check(uid, locale, content_locale)
        values = self._values(uid, fields)
        filename = str(values.get("filename") or values.get("title") or uid)
        digest = _blt("file", uid, filename)
        defaults: dict[str, Any] = {
            "content_type": "application/octet-stream",
            "file_size": "0",
            "tags": [],
            "filename": filename,
            "url": f"https://images.contentstack.io/v3/assets/{self.api_key}/{uid}/{digest}/"
            f"{quote(filename, safe='')}",  # percent-encoded, as the CDN's URLs are
            "ACL": {},
            "is_dir": False,
            "parent_uid": None,
            "title": filename,
        }
        head = _json({**defaults, **values})[1:-1]
        with self._lock:
            key = (ASSET, uid, locale)
            stamp, ms = self._stamp(at)
            version, created = self._bump(key, stamp)
            self._records[key] = (ASSETS_UID, version, created, True)
            data = (
                f'{{"uid":{_json(uid)},"created_at":"{created}","updated_at":"{stamp}",'
                f'"created_by":"{self.user_uid}","updated_by":"{self.user_uid}",{head},'
                f'"_version":{version},"locale":{_json(content_locale or locale)},'
                f'"publish_details":{self._details(locale, stamp)}}}'
            )
            self._append(key, "asset_published", ASSETS_UID, ms, stamp, f'"{ASSETS_UID}"', data)
            return version

    def unpublish_entry(self, uid: str, locale: str, *, at: datetime | None = None) -> None:
        """Withdraw one locale of an entry; a later publish continues its ``_version``."""
        self._withdraw((ENTRY, uid, locale), at, delete=False)

    def unpublish_asset(self, uid: str, locale: str, *, at: datetime | None = None) -> None:
        """Withdraw one locale of an asset; a later publish continues its ``_version``."""
        self._withdraw((ASSET, uid, locale), at, delete=False)

    def delete_entry(self, uid: str, locale: str, *, at: datetime | None = None) -> None:
        """Delete one locale of an entry; publishing it again starts at ``_version`` 1."""
        self._withdraw((ENTRY, uid, locale), at, delete=True)

    def delete_asset(self, uid: str, locale: str, *, at: datetime | None = None) -> None:
        """Delete one locale of an asset; publishing it again starts at ``_version`` 1."""
        self._withdraw((ASSET, uid, locale), at, delete=True)

    def delete_content_type(self, content_type_uid: str, *, at: datetime | None = None) -> None:
        """Delete a content type with all its entries: sync reports one
        ``content_type_deleted`` item and nothing per entry, as Contentstack does."""
        with self._lock:
            if content_type_uid not in self._content_types:
                raise KeyError(f"no content type {content_type_uid!r}")
            del self._content_types[content_type_uid]
            stamp, ms = self._stamp(at)
            doomed = sorted(
                key
                for key, record in self._records.items()
                if key[0] == ENTRY and record[0] == content_type_uid
            )
            for key in doomed:
                del self._records[key]
                self._entry_types.pop(key[1], None)
                self._append(key, "", content_type_uid, ms, stamp, "", "")
            self._append(
                (CONTENT_TYPE, content_type_uid, ""),
                "content_type_deleted",
                content_type_uid,
                ms,
                stamp,
                _json(content_type_uid),
                "{}",
            )

    def add_content_type(
        self,
        uid: str,
        title: str | None = None,
        schema: Iterable[Mapping[str, Any]] | None = None,
        *,
        title_field: str = "title",
        description: str = "",
        at: datetime | None = None,
    ) -> None:
        """Define (or redefine, bumping its ``_version``) a content type, as the CDA's
        ``GET /v3/content_types`` lists it.

        ``schema`` fields need ``uid`` and ``data_type`` (``display_name`` defaults to the uid);
        the default is the title field every Contentstack content type has. ``title_field``
        (``options.title``) names the field that titles entries. Publishing an entry under a
        type never defined defines this default."""
        if not uid or uid == ASSETS_UID:
            raise ValueError(f"invalid content type uid {uid!r}")
        fields = None if schema is None else [json.loads(_json(dict(f))) for f in schema]
        for field in fields or []:
            if not field.get("uid") or not field.get("data_type"):
                raise ValueError(f"content type {uid!r}: a field needs 'uid' and 'data_type'")
            field.setdefault("display_name", field["uid"])
        if fields is not None and title_field not in [f["uid"] for f in fields]:
            raise ValueError(f"content type {uid!r}: title field {title_field!r} is not in "
                             "its schema")
        with self._lock:
            stamp, _ = self._stamp(at)
            self._define(uid, title, fields, title_field, description, stamp)

    # -- mutation helpers (call with the lock held unless noted) -----------------------------

    def _define(self, uid: str, title: str | None, schema: list[dict[str, Any]] | None,
                title_field: str, description: str, stamp: str) -> None:
        previous = self._content_types.get(uid)
        self._content_types[uid] = {
            "created_at": previous["created_at"] if previous else stamp,
            "updated_at": stamp,
            "title": title or uid.replace("_", " ").capitalize(),
            "uid": uid,
            "_version": previous["_version"] + 1 if previous else 1,
            "inbuilt_class": False,
            "schema": schema if schema is not None else [{
                "display_name": "Title", "uid": "title", "data_type": "text",
                "mandatory": True, "unique": True, "multiple": False,
                "non_localizable": False, "field_metadata": {"_default": True}}],
            "last_activity": {},
            "maintain_revisions": True,
            "description": description,
            "options": {"is_page": False, "singleton": False, "title": title_field,
                        "sub_title": []},
        }

    def _check(self, uid: str, locale: str, content_locale: str | None = None) -> None:
        """Reject what the CMA would refuse, so a test's mistake surfaces at its source."""
        if not isinstance(uid, str) or not uid:
            raise ValueError(f"uid must be a non-empty string, got {uid!r}")
        for code in (locale, content_locale):
            if code is not None and code not in self.locales:
                raise ValueError(
                    f"{uid!r}: unknown locale {code!r}; the stack has {self.locales}"
                )

    def _values(self, uid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        reserved = _SYSTEM_KEYS.intersection(fields)
        if reserved:
            raise ValueError(f"{uid!r}: {sorted(reserved)} are set by the stack, not by fields")
        copied: dict[str, Any] = json.loads(_json(dict(fields)))  # detach from the caller
        return copied

    def _bump(self, key: Key, stamp: str) -> tuple[int, str]:
        """(_version, created_at) for a publish of ``key`` now."""
        record = self._records.get(key)
        if record is None:
            return 1, stamp
        return record[1] + 1, record[2]

    def _details(self, locale: str, stamp: str) -> str:
        return (
            f'{{"environment":"{self.environment_uid}","locale":{_json(locale)},'
            f'"time":"{stamp}","user":"{self.user_uid}"}}'
        )

    def _withdraw(self, key: Key, at: datetime | None, *, delete: bool) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is None:
                raise KeyError(f"no {key[0]} {key[1]!r} in locale {key[2]!r}")
            content_type_uid, version, created, published = record
            if delete:
                del self._records[key]
                if key[0] == ENTRY:
                    ct, count = self._entry_types[key[1]]
                    if count > 1:
                        self._entry_types[key[1]] = (ct, count - 1)
                    else:
                        del self._entry_types[key[1]]
            elif not published:
                return  # already invisible to delivery: nothing new for sync clients
            else:
                self._records[key] = (content_type_uid, version, created, False)
            stamp, ms = self._stamp(at)
            event = f"{key[0]}_{'deleted' if delete else 'unpublished'}"
            data = f'{{"uid":{_json(key[1])},"locale":{_json(key[2])}}}'
            self._append(key, event, content_type_uid, ms, stamp, _json(content_type_uid), data)

    def _append(
        self, key: Key, event: str, ct: str, ms: int, stamp: str, ct_json: str, data: str
    ) -> None:
        item = (
            f'{{"type":"{event}","event_at":"{stamp}","content_type_uid":{ct_json},'
            f'"data":{data}}}'.encode()
            if event
            else b""
        )
        seq = len(self._log) + 1
        history = self._history.get(key, ())
        self._history[key] = (*history, (seq, event, ct, key[2], ms, item))
        self._log.append((key, len(history)))

    def _stamp(self, at: datetime | None) -> tuple[str, int]:
        """A time strictly after every earlier one unless the caller pins ``at``, so
        ``updated_at`` and ``event_at`` order events even within one millisecond."""
        now = time.time_ns() // 1_000_000
        ms = to_ms(at) if at is not None else max(now, self._last_ms + 1)
        self._last_ms = max(self._last_ms, ms)
        return format_timestamp(ms), ms

    # -- reads -------------------------------------------------------------------------------

    def published(self) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """(kind, uid) -> {published locale: data}: exactly what ``*_published`` items would
        carry now (``data["locale"]`` differs from the key where published by fallback)."""
        with self._lock:
            items = [
                (key, self._history[key][-1][ITEM])
                for key, record in self._records.items()
                if record[3]
            ]
        result: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        with paused_gc():
            for (kind, uid, locale), item in sorted(items):
                result.setdefault((kind, uid), {})[locale] = json.loads(item)["data"]
        return result

    @property
    def content_types(self) -> list[str]:
        """Content types defined (or that entries were published under) and not deleted
        since."""
        with self._lock:
            return sorted(self._content_types)

    def content_type_definitions(self) -> list[dict[str, Any]]:
        """Every content type as the CDA renders it, by uid (deep copies)."""
        with self._lock:
            found = [self._content_types[uid] for uid in sorted(self._content_types)]
            return json.loads(_json(found))  # type: ignore[no-any-return]

    @property
    def head(self) -> int:
        """Sequence number of the latest event; sync tokens are anchored to it."""
        with self._lock:
            return len(self._log)

    def sync_page(
        self,
        *,
        at: int,
        since: int | None,
        after: int | None,
        limit: int,
        accept: Callable[[Event], bool],
        count: bool,
    ) -> SyncPage:
        """One page of a sync evaluated as of sequence number ``at``.

        ``since`` None is an initial sync (the state of every key as of ``at``), else a delta
        over the keys changed in (since, at].  Each key appears once, at the position of its
        latest event up to ``at``, and only if ``accept`` approves that event; pages continue
        strictly after sequence number ``after``.  ``count`` also counts every matching item of
        the whole sync (one extra pass, done on a sync's first page only).
        """
        low = since or 0
        resume = max(low, after or 0)
        items: list[bytes] = []
        last: int | None = None
        more = False
        total = 0
        with self._lock:
            if not 0 <= low <= at <= len(self._log):
                raise ValueError("sync window outside the log")
            log, history = self._log, self._history
            for seq in range(low + 1 if count else resume + 1, at + 1):
                key, index = log[seq - 1]
                events = history[key]
                if index + 1 < len(events) and events[index + 1][SEQ] <= at:
                    continue  # superseded before ``at``: the later event stands for the key
                event = events[index]
                if not accept(event):
                    continue
                total += 1
                if seq <= resume:
                    continue
                if len(items) < limit:
                    items.append(event[ITEM])
                    last = seq
                else:
                    more = True
                    if not count:
                        break
        return SyncPage(items, last, more, total if count else None)
