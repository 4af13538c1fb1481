"""In-memory Contentful space: locales, content types, entries and assets with CDA semantics.

Tests mutate a :class:`Space` directly (the way an editor would through the Management API)
while the emulator serves it, so every mutation takes the one lock and appends to the change
log.  Items are rendered to their exact delivery JSON at mutation time; the server only ever
joins those bytes, which keeps a 100k-entry sync cheap and guarantees that what
:meth:`Space.published_entries` reports is byte-for-byte what the wire carries.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .changelog import BODY, PUBLISHED, ChangeLog, Key, Page, Version

__all__ = ["ASSET", "ENTRY", "Locale", "Space", "format_timestamp", "paused_gc"]

ENTRY = "Entry"
ASSET = "Asset"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_LOCALE_NAMES = {
    "en-US": "English (United States)",
    "en-GB": "English (United Kingdom)",
    "de-DE": "German (Germany)",
    "fr-FR": "French (France)",
    "es-ES": "Spanish (Spain)",
    "it-IT": "Italian (Italy)",
    "ja-JP": "Japanese (Japan)",
}


_DAY_CACHE: dict[int, str] = {}


@contextmanager
def paused_gc() -> Iterator[None]:
    """Suspend the cyclic GC while building many long-lived containers.

    Bulk loads and bulk decodes create hundreds of thousands of dicts that all survive; each
    automatic collection would rescan them, making the whole operation 3-4x slower.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def format_timestamp(ms: int) -> str:
    """Milliseconds since the epoch as the CDA writes them: ``2024-01-02T03:04:05.678Z``.

    Hand-rolled (with a per-day cache) because strftime dominated bulk generation.
    """
    seconds, millis = divmod(ms, 1000)
    days, rest = divmod(seconds, 86_400)
    date = _DAY_CACHE.get(days)
    if date is None:
        date = (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%d")
        _DAY_CACHE[days] = date
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{date}T{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"


def _to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:  # naive datetimes are taken as UTC, like the CDA's own clock
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _dump(item: Mapping[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class Locale:
    """A locale of the space. ``fallback`` is the code whose value the reader uses instead."""

    code: str
    default: bool = False
    fallback: str | None = None
    optional: bool = False
    name: str | None = None

    @property
    def display_name(self) -> str:
        """The human name the locales endpoint reports."""
        return self.name or _LOCALE_NAMES.get(self.code, self.code)


_Record = tuple[str | None, int, str, bool]
"""(content_type, revision, created_at, published): management-side state of a resource that
exists.  A plain tuple so the garbage collector can untrack it (see changelog.py)."""


def _validate_locales(locales: Sequence[Locale]) -> None:
    codes = [locale.code for locale in locales]
    if not codes:
        raise ValueError("a space needs at least one locale")
    if len(set(codes)) != len(codes):
        raise ValueError(f"duplicate locale codes in {codes}")
    defaults = [locale for locale in locales if locale.default]
    if len(defaults) != 1:
        raise ValueError("exactly one locale must be the default")
    if defaults[0].fallback is not None:
        raise ValueError("the default locale cannot have a fallback")
    by_code = {locale.code: locale for locale in locales}
    for locale in locales:
        seen = {locale.code}
        step = locale.fallback
        while step is not None:
            if step not in by_code:
                raise ValueError(f"locale {locale.code} falls back to unknown locale {step}")
            if step in seen:
                raise ValueError(f"locale fallback cycle through {step}")
            seen.add(step)
            step = by_code[step].fallback


class Space:
    """One environment of a Contentful space, mutable from any thread while being served."""

    def __init__(
        self,
        space_id: str = "demo",
        environment: str = "master",
        locales: Iterable[Locale] | None = None,
        name: str | None = None,
    ) -> None:
        chosen = list(locales) if locales is not None else [Locale("en-US", default=True)]
        _validate_locales(chosen)
        self.space_id = space_id
        self.environment = environment
        self.name = name or space_id
        self._locales: tuple[Locale, ...] = tuple(chosen)
        self._locale_codes = frozenset(locale.code for locale in chosen)
        self._lock = threading.Lock()
        self._log = ChangeLog()
        self._records: dict[Key, _Record] = {}
        self._content_types: dict[str, dict[str, Any]] = {}
        self._last_ms = 0
        self._space_link = {"sys": {"type": "Link", "linkType": "Space", "id": space_id}}
        self._env_link = {"sys": {"id": environment, "type": "Link", "linkType": "Environment"}}
        self._space_json = json.dumps(self._space_link, separators=(",", ":"))
        self._env_json = json.dumps(self._env_link, separators=(",", ":"))

    # -- locales and content types -----------------------------------------------------------

    @property
    def locales(self) -> list[Locale]:
        """The space's locales, default first as configured."""
        return list(self._locales)

    @property
    def default_locale(self) -> str:
        """Code of the default locale."""
        return next(locale.code for locale in self._locales if locale.default)

    def add_content_type(
        self,
        content_type_id: str,
        *,
        name: str,
        fields: Iterable[Mapping[str, Any]],
        display_field: str | None = None,
        description: str = "",
        at: datetime | None = None,
    ) -> None:
        """Define (or redefine, bumping its revision) a content type."""
        normalized: list[dict[str, Any]] = []
        for field in fields:
            if "id" not in field or "type" not in field:
                raise ValueError(f"content type field needs 'id' and 'type': {field!r}")
            item = json.loads(json.dumps(dict(field)))
            item.setdefault("name", item["id"])
            for flag in ("localized", "required", "disabled", "omitted"):
                item.setdefault(flag, False)
            normalized.append(item)
        ids = [field["id"] for field in normalized]
        if display_field is not None and display_field not in ids:
            raise ValueError(f"display field {display_field!r} is not one of {ids}")
        with self._lock:
            stamp = self._stamp(at)
            previous = self._content_types.get(content_type_id)
            created = previous["sys"]["createdAt"] if previous else stamp
            revision = previous["sys"]["revision"] + 1 if previous else 1
            self._content_types[content_type_id] = {
                "sys": {
                    "space": self._space_link,
                    "id": content_type_id,
                    "type": "ContentType",
                    "createdAt": created,
                    "updatedAt": stamp,
                    "environment": self._env_link,
                    "revision": revision,
                },
                "displayField": display_field,
                "name": name,
                "description": description,
                "fields": normalized,
            }

    def delete_content_type(self, content_type_id: str) -> None:
        """Delete a content type that no entry uses any more (Contentful refuses otherwise)."""
        with self._lock:
            if content_type_id not in self._content_types:
                raise KeyError(f"no content type {content_type_id!r}")
            if any(key[0] == ENTRY and record[0] == content_type_id
                   for key, record in self._records.items()):
                raise ValueError(f"content type {content_type_id!r} still has entries")
            del self._content_types[content_type_id]

    def content_types(self) -> list[dict[str, Any]]:
        """Every content type as the CDA renders it (deep copies)."""
        with self._lock:
            return json.loads(json.dumps(list(self._content_types.values())))  # type: ignore[no-any-return]

    # -- mutations ---------------------------------------------------------------------------

    def publish_entry(
        self,
        entry_id: str,
        content_type: str,
        fields: Mapping[str, Mapping[str, Any]],
        *,
        at: datetime | None = None,
    ) -> int:
        """Create or update an entry and publish it; returns the new ``sys.revision``.

        An entry's content type cannot change (as in Contentful) unless it is deleted first.
        """
        return self._publish((ENTRY, entry_id), content_type, fields, at)

    def publish_asset(
        self, asset_id: str, fields: Mapping[str, Mapping[str, Any]], *, at: datetime | None = None
    ) -> int:
        """Create or update an asset and publish it; returns the new ``sys.revision``."""
        return self._publish((ASSET, asset_id), None, fields, at)

    def unpublish_entry(self, entry_id: str, *, at: datetime | None = None) -> None:
        """Withdraw an entry from delivery; it keeps its revision count for a later publish."""
        self._unpublish((ENTRY, entry_id), at, delete=False)

    def unpublish_asset(self, asset_id: str, *, at: datetime | None = None) -> None:
        """Withdraw an asset from delivery; it keeps its revision count for a later publish."""
        self._unpublish((ASSET, asset_id), at, delete=False)

    def delete_entry(self, entry_id: str, *, at: datetime | None = None) -> None:
        """Delete an entry; publishing the same id later starts again at revision 1."""
        self._unpublish((ENTRY, entry_id), at, delete=True)

    def delete_asset(self, asset_id: str, *, at: datetime | None = None) -> None:
        """Delete an asset; publishing the same id later starts again at revision 1."""
        self._unpublish((ASSET, asset_id), at, delete=True)

    def _publish(
        self,
        key: Key,
        content_type: str | None,
        fields: Mapping[str, Mapping[str, Any]],
        at: datetime | None,
    ) -> int:
        self._check_fields(key, fields)
        # Encode outside the lock: it is the expensive part, and fails early on bad values.
        fields_json = json.dumps(
            {field_id: dict(values) for field_id, values in fields.items()},
            separators=(",", ":"),
        )
        content_type_json = (
            ""
            if content_type is None
            else ',"contentType":{"sys":{"type":"Link","linkType":"ContentType","id":'
            + json.dumps(content_type)
            + "}}"
        )
        with self._lock:
            stamp = self._stamp(at)
            record = self._records.get(key)
            if record is None:
                revision, created_at = 1, stamp
            elif record[0] != content_type:
                raise ValueError(
                    f"entry {key[1]!r} has content type {record[0]!r}, "
                    f"not {content_type!r}; delete it first"
                )
            else:
                revision, created_at = record[1] + 1, record[2]
            self._records[key] = (content_type, revision, created_at, True)
            # Same JSON as dumping the sys dict, assembled from parts to keep bulk loads fast.
            body = (
                f'{{"sys":{{"space":{self._space_json},"id":{json.dumps(key[1])},'
                f'"type":"{key[0]}","createdAt":"{created_at}","updatedAt":"{stamp}",'
                f'"environment":{self._env_json},"revision":{revision}'
                f'{content_type_json}}},"fields":{fields_json}}}'
            ).encode("ascii")
            self._log.append(key, published=True, content_type=content_type, body=body)
            return revision

    def _unpublish(self, key: Key, at: datetime | None, *, delete: bool) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is None:
                raise KeyError(f"no {key[0].lower()} with id {key[1]!r}")
            content_type, revision, created_at, published = record
            if delete:
                del self._records[key]
            else:
                self._records[key] = (content_type, revision, created_at, False)
            if not published:
                return  # already invisible to delivery: nothing new to tell sync clients
            stamp = self._stamp(at)
            body = _dump(
                {
                    "sys": {
                        "space": self._space_link,
                        "id": key[1],
                        "type": "Deleted" + key[0],
                        "createdAt": stamp,
                        "updatedAt": stamp,
                        "deletedAt": stamp,
                        "environment": self._env_link,
                        "revision": revision,
                    }
                }
            )
            self._log.append(key, published=False, content_type=content_type, body=body)

    def _check_fields(self, key: Key, fields: Mapping[str, Mapping[str, Any]]) -> None:
        """Reject field maps the CMA would refuse, so test mistakes surface at the source."""
        codes = self._locale_codes
        for field_id, per_locale in fields.items():
            if not isinstance(per_locale, dict) and not isinstance(per_locale, Mapping):
                raise TypeError(
                    f"{key[0]} {key[1]!r}: field {field_id!r} must map locale codes to values"
                )
            if not codes.issuperset(per_locale):
                unknown = set(per_locale) - codes
                raise ValueError(
                    f"{key[0]} {key[1]!r}: field {field_id!r} has unknown locales {sorted(unknown)}"
                )

    def _stamp(self, at: datetime | None) -> str:
        """A timestamp strictly after every earlier one unless the caller pins ``at``.

        Strictly increasing times keep ``updatedAt`` meaningful as a change signal even when
        a test publishes twice within one millisecond.
        """
        now = time.time_ns() // 1_000_000
        ms = _to_ms(at) if at is not None else max(now, self._last_ms + 1)
        self._last_ms = max(self._last_ms, ms)
        return format_timestamp(ms)

    # -- reads -------------------------------------------------------------------------------

    def published_entries(self) -> dict[str, dict[str, Any]]:
        """id -> the exact item the CDA would deliver for each published entry now."""
        return self._published(ENTRY)

    def published_assets(self) -> dict[str, dict[str, Any]]:
        """id -> the exact item the CDA would deliver for each published asset now."""
        return self._published(ASSET)

    def _published(self, kind: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            bodies = [
                (item_id, version[BODY])
                for item_id, version in self._log.current_versions(kind)
                if version[PUBLISHED]
            ]
        with paused_gc():
            return {item_id: json.loads(body) for item_id, body in sorted(bodies)}

    @property
    def head(self) -> int:
        """Sequence number of the latest visible change; sync tokens are anchored to it."""
        with self._lock:
            return self._log.head

    def sync_page(
        self,
        *,
        at: int,
        since: int | None,
        after: Key | None,
        limit: int,
        kinds: Collection[str],
        accept: Callable[[Version], bool],
    ) -> Page:
        """One sync page as of sequence ``at``; see :meth:`ChangeLog.scan`."""
        with self._lock:
            return self._log.scan(
                at=at, since=since, after=after, limit=limit, kinds=kinds, accept=accept
            )
