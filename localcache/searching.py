"""The Cache's full-text search: whether the index is kept, building it on open, and queries.

The index itself (an FTS5 table, its rows and its SQL) is ``store/search.py``; the sync engine
keeps it in step, page by page, while ``Cache(..., search=True)`` (the default). This module
decides on open: with search on, a store without the index (a snapshot made with search off, a
store from an earlier version) gets it built in one transaction; with search off, an existing
index is dropped, so the file does not carry it. Where SQLite has no FTS5, search is reported
unavailable and everything else works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ConfigurationError, QueryError
from .store.database import Store
from .store.query import LinkResolver, LocaleChain, Record, fetch_entry
from .store.search import (
    TextPlan,
    drop_index,
    ensure_index,
    entry_text,
    has_index,
    missing_fts5,
    plan_for,
    rebuild_index,
    search_rows,
    snippet,
)

__all__ = ["SearchHit", "SearchIndex"]

log = logging.getLogger("localcache.search")

MAX_HITS = 1000


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One entry found by :meth:`~localcache.Cache.search`: its id, the record, its bm25
    score (higher is better) and the text around the match, matched words in [brackets]."""

    id: str
    record: Record = field(repr=False)
    score: float
    snippet: str


class SearchIndex:
    """The search side of one Cache. ``wanted``: True/False as asked, None to use the index
    only where the file has one (``Cache.open``)."""

    def __init__(self, store: Store, *, wanted: bool | None) -> None:
        self._store = store
        self._wanted = wanted
        self.unavailable: str | None = None
        self._texts: TextPlan | None = None
        if wanted is None:
            with store.reading():
                present = has_index(store.raw_connection())
            self._wanted = present
            if not present:
                self.unavailable = "this store was synced with search turned off"

    @property
    def enabled(self) -> bool:
        return bool(self._wanted) and self.unavailable is None

    def prepare(self, locales: Callable[[], LocaleChain]) -> None:
        """Create (and fill) or drop the index to match what was asked; on open. An index this
        SQLite cannot keep (no FTS5 here) is dropped as if search were off, so the next open
        where FTS5 is available builds it anew rather than trusting rows no sync kept."""
        with self._store.reading():
            conn = self._store.raw_connection()
            present = has_index(conn)
            reason = missing_fts5(conn) if present and self._wanted else None
        if not self._wanted or reason is not None:
            if present:
                with self._store.write():
                    drop_index(self._store.raw_connection())
            if reason is not None:
                log.warning("full-text search is unavailable: %s", reason)
                self.unavailable = reason
            return
        if present:
            return
        chain = locales()
        with self._store.write():
            conn = self._store.raw_connection()
            reason = ensure_index(conn)
            if reason is None:
                rebuild_index(conn, chain)
        if reason is not None:
            log.warning("full-text search is unavailable: %s", reason)
            self.unavailable = reason

    def _plan(self, locales: LocaleChain) -> TextPlan:
        """How the rows' texts are made with ``locales`` (kept while the chain is the same)."""
        self._texts = plan_for(locales, self._texts)
        return self._texts

    def search(self, text: str, chain_of: Callable[[], LocaleChain], locale: str | None,
               content_type: str | None, limit: int,
               resolver: LinkResolver | None = None) -> list[SearchHit]:
        if not self._wanted:
            raise ConfigurationError(
                "search is turned off for this cache; open it with Cache(..., search=True)")
        if self.unavailable is not None:
            raise ConfigurationError(f"full-text search is unavailable: {self.unavailable}")
        if not isinstance(text, str):
            raise QueryError(f"search text must be a string, not {type(text).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_HITS:
            raise QueryError(f"search limit must be a whole number from 1 to {MAX_HITS}, "
                             f"not {limit!r}")
        if content_type is not None and not isinstance(content_type, str):
            raise QueryError(f"search content_type must be a string, not {content_type!r}")
        with self._store.reading():
            locales = chain_of()  # in the transaction: the state the rows are read from
            code = locale if locale is not None else locales.default
            if code is None:
                return []  # nothing synced yet
            if code not in locales.fallbacks:
                raise QueryError(f"search locale {code!r} is not a locale of this store "
                                 f"({', '.join(sorted(locales.fallbacks)) or 'none yet'})")
            conn = self._store.raw_connection()
            rows = search_rows(conn, text, code, content_type, limit)
            hits = []
            for row in rows:
                record = fetch_entry(conn, row.id, locales, resolver)
                if record is not None:
                    body = entry_text(self._plan(locales), record.raw, record.content_type, code)
                    hits.append(SearchHit(row.id, record, row.score, snippet(body, text)))
        return hits
