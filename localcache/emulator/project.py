"""In-memory Kontent.ai environment: languages, content types, taxonomies and language variants.

Kontent.ai delivers each *language variant* of a content item as its own item, so the unit this
model versions is the pair (item id, language).  Tests mutate a :class:`Project` directly (as an
editor would publish in the Kontent.ai app) while the emulator serves it; every mutation takes the
one lock and appends to a change log, so the Sync API can answer "what changed after sequence
number N, as of sequence number M" and page through it with a keyset cursor however the project
changes between two page requests (see ``changelog.py`` for the same idea in Contentful's space).

The Delivery JSON of every state is rendered once, at mutation time, and kept as bytes: what
:meth:`Project.published` reports is byte for byte what the wire carries.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

__all__ = [
    "ELEMENT_TYPES",
    "ITEM",
    "KINDS",
    "LANGUAGE",
    "TAXONOMY",
    "TYPE",
    "Accept",
    "Change",
    "DeltaPage",
    "Key",
    "Language",
    "Project",
]

ITEM = "item"
LANGUAGE = "language"
TAXONOMY = "taxonomy"
TYPE = "type"
KINDS = (ITEM, TYPE, LANGUAGE, TAXONOMY)
"""Resource kinds, in the order Sync API v2 lists its arrays."""

Key = tuple[str, str, str]
"""(kind, id, language): id is the item id for items and the codename otherwise; language is
the variant's language codename for items and "" otherwise.  Tuple order is the paging order."""

DEFAULT_LANGUAGE_ID = "00000000-0000-0000-0000-000000000000"  # Kontent.ai's default language id

ELEMENT_TYPES: dict[str, Any] = {
    "text": "",
    "rich_text": "<p><br></p>",
    "number": None,
    "date_time": None,
    "asset": [],
    "modular_content": [],
    "multiple_choice": [],
    "taxonomy": [],
    "url_slug": "",
    "custom": None,
}
"""Element types a content type may declare, with the value delivered when none was given."""

_DELTA_CACHE_SIZE = 32


class Change(NamedTuple):
    """One visible state of a resource from ``seq`` on.

    ``system`` is the JSON of its ``system`` block; ``body`` its whole Delivery JSON (for a
    deleted resource: the system block only, which is what a deletion delta carries).  ``type``,
    ``collection`` and ``language`` are an item variant's sync-filter attributes ("" otherwise).
    """

    seq: int
    deleted: bool
    timestamp: str
    system: bytes
    body: bytes
    type: str
    collection: str
    language: str


@dataclass(frozen=True, slots=True)
class DeltaPage:
    """A slice of one kind's changes: states in key order, the last key, and whether more follow."""

    changes: list[Change]
    last: Key | None
    more: bool


@dataclass(frozen=True)
class Language:
    """A language of the environment; every non-default language falls back to the default."""

    codename: str
    name: str
    id: str


Accept = Callable[[Key, Change, Callable[[Key], Change | None]], bool]
"""Sync filter: (key, state as of ``at``, lookup of any key's state as of ``at``) -> include?"""


@dataclass
class _Item:
    """Item-level facts shared by all of an item's variants."""

    codename: str
    type: str
    name: str
    collection: str
    languages: set[str]


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _title(codename: str) -> str:
    """``my_article`` -> ``My article``: the display name Kontent.ai derives from a codename."""
    return codename.replace("_", " ").strip().capitalize() or codename


def format_timestamp(us: int) -> str:
    """Microseconds since the epoch as Kontent.ai writes them: 7 fractional digits, ``Z``."""
    seconds, micros = divmod(us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{micros:06d}0Z"


class _Log:
    """Append-only history of every resource, readable as of any past sequence number."""

    def __init__(self) -> None:
        self.keys: list[Key] = []  # index i holds the key changed by sequence number i + 1
        self.history: dict[Key, tuple[Change, ...]] = {}
        self._delta_cache: OrderedDict[tuple[int, int, str], list[Key]] = OrderedDict()

    @property
    def head(self) -> int:
        return len(self.keys)

    def append(self, key: Key, change: Change) -> None:
        self.keys.append(key)
        self.history[key] = (*self.history.get(key, ()), change)

    def current(self, key: Key) -> Change | None:
        history = self.history.get(key)
        return history[-1] if history else None

    def state_at(self, key: Key, at: int) -> Change | None:
        history = self.history.get(key)
        if not history:
            return None
        if history[-1].seq <= at:
            return history[-1]
        index = bisect_right(history, at, key=lambda change: change.seq)
        return history[index - 1] if index else None

    def changed(self, since: int, at: int, kind: str) -> list[Key]:
        """Sorted distinct keys of ``kind`` changed in (since, at], cached across pages."""
        cache_key = (since, at, kind)
        cached = self._delta_cache.get(cache_key)
        if cached is not None:
            self._delta_cache.move_to_end(cache_key)
            return cached
        keys = sorted({key for key in self.keys[since:at] if key[0] == kind})
        self._delta_cache[cache_key] = keys
        if len(self._delta_cache) > _DELTA_CACHE_SIZE:
            self._delta_cache.popitem(last=False)
        return keys


class Project:
    """One Kontent.ai environment, mutable from any thread while it is being served."""

    def __init__(
        self,
        environment_id: str = "975bf280-fd91-488c-994c-2f04416e5ee3",
        languages: Sequence[str] = ("default",),
        secure_api_key: str | None = None,
    ) -> None:
        codenames = list(languages)
        if not codenames:
            raise ValueError("a project needs at least one language")
        if len(set(codenames)) != len(codenames):
            raise ValueError(f"duplicate language codenames in {codenames}")
        self.environment_id = environment_id
        self.secure_api_key = secure_api_key
        self._lock = threading.Lock()
        self._log = _Log()
        self._last_us = 0
        self._languages: dict[str, Language] = {}
        self._default = codenames[0]
        for codename in codenames:
            self._activate(codename, None)
        self._types: dict[str, dict[str, str]] = {}  # codename -> element codename -> type
        self._taxonomies: set[str] = set()
        self._items: dict[str, _Item] = {}
        self._codenames: dict[str, str] = {}  # item codename -> item id

    def _activate(self, codename: str, name: str | None) -> None:
        """Add a language to the project and the change log; caller holds the lock."""
        default = codename == self._default
        ident = DEFAULT_LANGUAGE_ID if default else self._uuid("language", codename)
        name = name or ("Default project language" if codename == "default" else codename)
        self._languages[codename] = Language(codename, name, ident)
        self._append_meta(
            LANGUAGE, codename, {"id": ident, "name": name, "codename": codename}, None
        )

    def _uuid(self, kind: str, codename: str) -> str:
        return str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"kontent:{self.environment_id}:{kind}:{codename}")
        )

    # -- languages ---------------------------------------------------------------------------

    @property
    def default_language(self) -> str:
        """Codename of the default language (the first one given)."""
        return self._default

    def languages(self) -> list[Language]:
        """Active languages, default first."""
        with self._lock:
            return list(self._languages.values())

    def fallback_chain(self, codename: str) -> list[str]:
        """Languages Delivery tries for ``codename``: itself, then the default language."""
        return [codename] if codename == self._default else [codename, self._default]

    def add_language(self, codename: str, name: str | None = None) -> None:
        """Activate a language (falling back to the default); Sync v2 reports it as changed."""
        with self._lock:
            if codename in self._languages:
                raise ValueError(f"language {codename!r} already exists")
            self._activate(codename, name)

    def delete_language(self, codename: str) -> None:
        """Remove a non-default language; its variants disappear from delivery first."""
        if codename == self._default:
            raise ValueError("the default language cannot be deleted")
        with self._lock:
            language = self._languages.pop(codename, None)
            if language is None:
                raise KeyError(f"no language {codename!r}")
            for item_id in sorted(self._items):
                if codename in self._items[item_id].languages:
                    self._delete_variant(item_id, codename)
            system = {"id": language.id, "name": language.name, "codename": codename}
            self._append_meta(LANGUAGE, codename, system, None, deleted=True)

    # -- content types and taxonomies ----------------------------------------------------------

    def add_type(
        self, codename: str, elements: Mapping[str, str], *, name: str | None = None
    ) -> None:
        """Define or redefine a content type; variants published earlier keep their rendering."""
        for element, element_type in elements.items():
            if element_type not in ELEMENT_TYPES:
                raise ValueError(
                    f"type {codename!r}: element {element!r} has unknown type "
                    f"{element_type!r}; use one of {sorted(ELEMENT_TYPES)}"
                )
        rendered: dict[str, Any] = {}
        for element, element_type in elements.items():
            rendered[element] = {"type": element_type, "name": _title(element)}
            if element_type == "taxonomy":
                rendered[element]["taxonomy_group"] = element
        system = {
            "id": self._uuid("type", codename),
            "name": name or _title(codename),
            "codename": codename,
        }
        with self._lock:
            self._types[codename] = dict(elements)
            self._append_meta(TYPE, codename, system, b'"elements":' + _dump(rendered))

    def delete_type(self, codename: str) -> None:
        """Delete a content type that no item uses any more."""
        with self._lock:
            if codename not in self._types:
                raise KeyError(f"no content type {codename!r}")
            if any(item.type == codename for item in self._items.values()):
                raise ValueError(f"content type {codename!r} is still used by items")
            del self._types[codename]
            self._append_meta(TYPE, codename, self._meta_system(TYPE, codename), None, deleted=True)

    def upsert_taxonomy(
        self, codename: str, terms: Iterable[str] = (), *, name: str | None = None
    ) -> None:
        """Create or replace a taxonomy group with a flat list of term codenames."""
        rendered = [{"name": _title(term), "codename": term, "terms": []} for term in terms]
        system = {
            "id": self._uuid("taxonomy", codename),
            "name": name or _title(codename),
            "codename": codename,
        }
        with self._lock:
            self._taxonomies.add(codename)
            self._append_meta(TAXONOMY, codename, system, b'"terms":' + _dump(rendered))

    def delete_taxonomy(self, codename: str) -> None:
        """Delete a taxonomy group."""
        with self._lock:
            if codename not in self._taxonomies:
                raise KeyError(f"no taxonomy group {codename!r}")
            self._taxonomies.discard(codename)
            system = self._meta_system(TAXONOMY, codename)
            self._append_meta(TAXONOMY, codename, system, None, deleted=True)

    def _meta_system(self, kind: str, codename: str) -> dict[str, Any]:
        current = self._log.current((kind, codename, ""))
        assert current is not None
        system: dict[str, Any] = json.loads(current.system)
        return system

    def _append_meta(
        self,
        kind: str,
        codename: str,
        system: dict[str, Any],
        content: bytes | None,
        *,
        deleted: bool = False,
    ) -> None:
        """Log a type, taxonomy or language state; caller holds the lock."""
        stamp = self._stamp()
        if kind != LANGUAGE and not deleted:
            system = {**system, "last_modified": stamp}
        system_json = _dump(system)
        body = b'{"system":' + system_json + (b"," + content if content else b"") + b"}"
        change = Change(self._log.head + 1, deleted, stamp, system_json, body, "", "", "")
        self._log.append((kind, codename, ""), change)

    # -- language variants -------------------------------------------------------------------

    def upsert_variant(
        self,
        item_id: str,
        codename: str,
        type: str,
        language: str,
        elements: Mapping[str, Any],
        *,
        collection: str | None = None,
        name: str | None = None,
    ) -> None:
        """Publish (create or update) one language variant of an item.

        An item's codename and content type are fixed while any variant exists.  Its name and
        collection are item-level (None keeps them; a new item gets its codename's title and
        "default"): changing them republishes the item's other variants, as the real API then
        reports them all changed.
        """
        with self._lock:
            if language not in self._languages:
                raise ValueError(f"unknown language {language!r}")
            declared = self._types.get(type)
            if declared is None:
                raise ValueError(f"unknown content type {type!r}; add_type() it first")
            unknown = set(elements) - set(declared)
            if unknown:
                raise ValueError(
                    f"item {item_id!r}: type {type!r} has no elements {sorted(unknown)}"
                )
            owner = self._codenames.get(codename)
            if owner is not None and owner != item_id:
                raise ValueError(f"codename {codename!r} already belongs to item {owner!r}")
            item = self._items.get(item_id)
            if item is not None and (item.codename, item.type) != (codename, type):
                raise ValueError(
                    f"item {item_id!r} is {item.codename!r} of type {item.type!r}; "
                    "delete it before reusing the id"
                )
            rendered = self._render_elements(declared, elements)  # fails before any change
            item_name = name or (item.name if item else _title(codename))
            collection = collection or (item.collection if item else "default")
            if item is None:
                item = _Item(codename, type, item_name, collection, set())
                self._items[item_id] = item
                self._codenames[codename] = item_id
            moved = (item.name, item.collection) != (item_name, collection)
            item.name, item.collection = item_name, collection
            item.languages.add(language)
            self._publish(item_id, item, language, rendered)
            if moved:
                for other in sorted(item.languages - {language}):
                    current = self._log.current((ITEM, item_id, other))
                    assert current is not None
                    old_elements = json.loads(current.body)["elements"]
                    self._publish(item_id, item, other, b'"elements":' + _dump(old_elements))

    def _render_elements(self, declared: Mapping[str, str], values: Mapping[str, Any]) -> bytes:
        rendered: dict[str, Any] = {}
        for element, element_type in declared.items():
            entry: dict[str, Any] = {"type": element_type, "name": _title(element)}
            if element_type == "rich_text":
                entry.update(images={}, links={}, modular_content=[])
            elif element_type == "taxonomy":
                entry["taxonomy_group"] = element
            entry["value"] = values.get(element, ELEMENT_TYPES[element_type])
            rendered[element] = entry
        return b'"elements":' + _dump(rendered)

    def _publish(self, item_id: str, item: _Item, language: str, elements: bytes) -> None:
        stamp = self._stamp()
        system = _dump(self._variant_system(item_id, item, language, stamp))
        body = b'{"system":' + system + b"," + elements + b"}"
        change = Change(
            self._log.head + 1, False, stamp, system, body, item.type, item.collection, language
        )
        self._log.append((ITEM, item_id, language), change)

    @staticmethod
    def _variant_system(item_id: str, item: _Item, language: str, stamp: str) -> dict[str, Any]:
        return {
            "id": item_id,
            "name": item.name,
            "codename": item.codename,
            "language": language,
            "type": item.type,
            "collection": item.collection,
            "sitemap_locations": [],
            "last_modified": stamp,
            "workflow": "default",
            "workflow_step": "published",
        }

    def delete_variant(self, item_id: str, language: str) -> None:
        """Unpublish or delete one language variant; Sync reports it deleted."""
        with self._lock:
            item = self._items.get(item_id)
            if item is None or language not in item.languages:
                raise KeyError(f"item {item_id!r} has no published {language!r} variant")
            self._delete_variant(item_id, language)

    def delete_item(self, item_id: str) -> None:
        """Delete every variant of an item; its id and codename may then be reused."""
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                raise KeyError(f"no item {item_id!r}")
            for language in sorted(item.languages):
                self._delete_variant(item_id, language)

    def _delete_variant(self, item_id: str, language: str) -> None:
        """Caller holds the lock; the deletion carries the variant's last system block."""
        item = self._items[item_id]
        key = (ITEM, item_id, language)
        current = self._log.current(key)
        assert current is not None and not current.deleted
        body = b'{"system":' + current.system + b"}"
        change = Change(
            self._log.head + 1,
            True,
            self._stamp(),
            current.system,
            body,
            current.type,
            current.collection,
            language,
        )
        self._log.append(key, change)
        item.languages.discard(language)
        if not item.languages:
            del self._items[item_id]
            del self._codenames[item.codename]

    def _stamp(self) -> str:
        """A timestamp strictly after every earlier one, so last_modified always moves."""
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return format_timestamp(self._last_us)

    # -- reads -------------------------------------------------------------------------------

    def published(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(item id, language) -> the Delivery item JSON of every published variant, now."""
        with self._lock:
            bodies = [
                ((key[1], key[2]), history[-1].body)
                for key, history in self._log.history.items()
                if key[0] == ITEM and not history[-1].deleted
            ]
        return {key: json.loads(body) for key, body in sorted(bodies)}

    @property
    def head(self) -> int:
        """Sequence number of the latest change; sync tokens are anchored to it."""
        with self._lock:
            return self._log.head

    def resolve(self, item_id: str, language: str, *, fallbacks: bool) -> Change | None:
        """The variant Delivery serves for ``language`` now (following fallbacks if asked)."""
        with self._lock:
            return self._resolve(item_id, language, fallbacks)

    def _resolve(self, item_id: str, language: str, fallbacks: bool) -> Change | None:
        chain = self.fallback_chain(language) if fallbacks else [language]
        for candidate in chain:
            change = self._log.current((ITEM, item_id, candidate))
            if change is not None and not change.deleted:
                return change
        return None

    def item_id(self, codename: str) -> str | None:
        """Id of the live item with ``codename``."""
        with self._lock:
            return self._codenames.get(codename)

    def delivered_items(self, language: str, *, fallbacks: bool) -> list[tuple[str, Change]]:
        """(item id, served variant) of every item Delivery lists for ``language``, by id."""
        with self._lock:
            served = [
                (item_id, self._resolve(item_id, language, fallbacks))
                for item_id in sorted(self._items)
            ]
        return [(item_id, change) for item_id, change in served if change is not None]

    def current(self, kind: str) -> list[Change]:
        """Live types or taxonomies by codename; languages in project order, default first."""
        with self._lock:
            if kind == LANGUAGE:
                return [self._log.history[(kind, code, "")][-1] for code in self._languages]
            found = [
                history[-1]
                for key, history in sorted(self._log.history.items())
                if key[0] == kind and not history[-1].deleted
            ]
        return found

    def delta_page(
        self,
        *,
        kind: str,
        since: int,
        at: int,
        after: Key | None,
        limit: int,
        accept: Accept | None = None,
    ) -> DeltaPage:
        """States as of ``at`` of the ``kind`` resources changed in (since, at], after ``after``.

        Evaluating every page of a sync as of one fixed ``at`` and cutting pages by key is what
        keeps paging exact while the project changes: a later change belongs to the next sync.
        ``more`` is True only when a further matching change really exists.
        """
        with self._lock:
            log = self._log
            keys = log.changed(since, at, kind)
            start = bisect_right(keys, after) if after is not None else 0
            changes: list[Change] = []
            last: Key | None = None

            def lookup(other: Key) -> Change | None:
                return log.state_at(other, at)

            for key in keys[start:]:
                change = log.state_at(key, at)
                if change is None or (accept is not None and not accept(key, change, lookup)):
                    continue
                if len(changes) >= limit:
                    return DeltaPage(changes, last, True)
                changes.append(change)
                last = key
            return DeltaPage(changes, last, False)
