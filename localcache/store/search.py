"""Full-text search: an FTS5 index over the text of every entry, one table per locale.

A locale's table holds, for each entry, what :meth:`Record.field` shows in that locale after
fallback (unlocalized fields read from the default locale first, as there): text and symbol
fields, arrays of them, and the plain text of rich text (Contentful rich-text documents,
Contentstack JSON RTE and HTML, Kontent.ai ``rich_text`` HTML). ``search_index`` maps each
entry to the rowid its rows have in every locale's table, and holds its content type. The
sync engine rewrites the rows of
every entry a page changed inside that page's transaction, so a search never sees half a page;
a change of the locales' fallbacks rewrites them all.

Why a table per locale: a prefix query merges the position lists of every term it expands to
before it yields a row, and bm25 reads each query word's list once more for its document
frequency. With all locales in one table and a locale token to filter on, a common word of a
100k-entry store with 3 locales cost 13 ms before the first row was ranked; with one table
per locale, each list is a third as long and the locale filter (a list of every row) is gone.

Matching is by words, as a search box does: the text and the query are cut into words
(letters and digits; case and diacritics folded, as FTS5's ``unicode61`` tokenizer does), and
an entry matches when every word of the query begins a word of its text (``"gar"`` finds
"Garden"). Each query word is passed to FTS5 as a quoted string, so ``"``, ``*``, ``NEAR`` and
``-`` are searched for as text, never parsed as syntax. The index keeps word positions
(``detail=full``): measured against ``detail=column``, it wrote as fast and ranked a common
prefix three times faster. Ranking is bm25 over the matches, exact while at most
:data:`RANKED_MATCHES` entries match; beyond, over that many of the newest rows (see
:func:`search_rows`). Where the SQLite build lacks FTS5, :func:`ensure_index` reports it and
nothing else is affected.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from ..model import Delta
from .apply import PageChanges
from .query import LocaleChain, chain_for

__all__ = [
    "RANKED_MATCHES",
    "PreparedTexts",
    "SearchRow",
    "TextPlan",
    "TextsAhead",
    "drop_index",
    "ensure_index",
    "has_index",
    "index_changes",
    "missing_fts5",
    "plain_text",
    "rebuild_index",
    "search_rows",
    "snippet",
    "upgrade_legacy_index",
]

#: How many matches bm25 ranks at most: the newest rows (entries synced or changed last).
#: Ranking costs a few microseconds a row, so a word found in most of a large store would
#: otherwise cost tens of milliseconds; a search with this many matches or fewer is exact.
RANKED_MATCHES = 1000

_CREATE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
    "text, tokenize = 'unicode61 remove_diacritics 2', detail = 'full')"
)
# The content type is kept here, not as a token in every row of every locale: a column
# of one token a row cost a fifth of the inserts' time, and its list (nearly every row)
# was read in full by bm25 whenever a search named a type.
_ROWS = ("CREATE TABLE IF NOT EXISTS search_index "
         "(row INTEGER PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE, content_type TEXT)")
_PREFIX = "search_text_"
_PROBE = "temp.search_probe"
# Merge segments less eagerly than FTS5's default (automerge 4, crisismerge 16): a sync
# commits one segment a page to each locale's table, and merging every few pages cost more
# than the inserts themselves. Against automerge 16, 32 made an initial sync of 100k entries
# 3-10% quicker (of 20k, whose 21 pages merge nothing, 10%) for 39 segments a table instead
# of 26 and searches about 5% slower.
_SETTINGS = (("automerge", 32), ("crisismerge", 64))
_WORD = re.compile(r"[^\W_]+")
_HTML_TAG = re.compile(r"<[A-Za-z/!][^>]*>")
_CHUNK = 500
_KONTENT_TEXT = ("text", "rich_text", "url_slug", "custom")


def missing_fts5(conn: sqlite3.Connection) -> str | None:
    """Why search cannot work with this SQLite build (no FTS5 module), or None: a temporary
    table is made and dropped, in any transaction."""
    try:
        conn.execute(_CREATE.format(table=_PROBE))
        conn.execute(f"DROP TABLE {_PROBE}")
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc).lower() or "tokenizer" in str(exc).lower():
            return f"this SQLite build ({sqlite3.sqlite_version}) has no FTS5 module"
        raise
    return None


def ensure_index(conn: sqlite3.Connection) -> str | None:
    """Create the index if it is missing (each locale's table comes with its rows), replacing
    one in the layout before schema version 4; in a write transaction. Returns why search
    cannot work on this SQLite build, or None."""
    reason = missing_fts5(conn)
    if reason is not None:
        return reason
    if _legacy(conn):
        conn.execute("DROP TABLE search_index")
    conn.execute(_ROWS)
    return None


def has_index(conn: sqlite3.Connection) -> bool:
    """Whether the file has the index (in this layout)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'search_index'").fetchone()
    return row is not None and not _is_virtual(row[0])


def _legacy(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'search_index'").fetchone()
    return row is not None and _is_virtual(row[0])


def _is_virtual(sql: object) -> bool:
    return str(sql).upper().startswith("CREATE VIRTUAL TABLE")


def drop_index(conn: sqlite3.Connection) -> None:
    """Drop the index (either layout); in a write transaction. Where FTS5 is missing, its
    tables cannot be dropped: they stay, unused, and without ``search_index`` the next open
    with FTS5 and search on builds them anew."""
    if missing_fts5(conn) is None:
        for table in _locale_tables(conn).values():
            conn.execute(f"DROP TABLE {table}")
    elif _legacy(conn):
        return
    conn.execute("DROP TABLE IF EXISTS search_index")


def upgrade_legacy_index(conn: sqlite3.Connection) -> None:
    """Schema version 4: an index in the earlier layout (one FTS5 table ``search_index`` with
    a locale token on each row) is built again in this one, in the migration's transaction.
    A store without an index stays without; where FTS5 is missing, the old table stays (it
    cannot be dropped) and is rebuilt where the store is next opened with FTS5."""
    if _legacy(conn) and ensure_index(conn) is None:
        rebuild_index(conn, chain_for(conn))


def _table(locale: str) -> str:
    return _PREFIX + locale.encode("utf-8").hex()


def _locale_tables(conn: sqlite3.Connection) -> dict[str, str]:
    """Locale code → its FTS5 table, as the file has them."""
    found = {}
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                  "AND name GLOB 'search_text_*'"):
        code = name[len(_PREFIX):]
        if re.fullmatch(r"(?:[0-9a-f]{2})+", code) and _is_virtual(sql):
            found[bytes.fromhex(code).decode("utf-8", "replace")] = name
    return found


def _create_table(conn: sqlite3.Connection, locale: str) -> str:
    table = _table(locale)
    conn.execute(_CREATE.format(table=table))
    for name, value in _SETTINGS:
        conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('{name}', {value})")
    return table


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def words(text: str) -> list[str]:
    """The words of ``text`` as the index cuts them (before case and diacritic folding)."""
    return _WORD.findall(text)


def fold(word: str) -> str:
    """A word as the index compares it: lower case, without diacritics."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# -- text of a record ------------------------------------------------------------------------


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _html_text(value: str) -> str:
    parser = _TextOfHtml()
    parser.feed(value)
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def plain_text(value: Any) -> Iterator[str]:
    """The searchable text in one field value: strings (HTML stripped), arrays of them, rich
    text documents of the three vendors, Kontent.ai elements' values. Links, numbers,
    booleans, locations and other objects hold no searchable text. (A date is a string in all
    three vendors' JSON: it is left out by its field's declared type, see
    ``UNSEARCHED_TYPES``, not here.)"""
    if isinstance(value, str):
        yield _html_text(value) if _HTML_TAG.search(value) else value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (str, dict)):
                yield from plain_text(item)
    elif isinstance(value, dict):
        if value.get("nodeType") == "document" or value.get("type") == "doc":
            yield from _rich_text(value)
        elif value.get("type") in _KONTENT_TEXT and "name" in value:
            # A Kontent.ai element: text, rich text, URL slug; not numbers or references.
            inner = value.get("value")
            if isinstance(inner, str):
                yield from plain_text(inner)


def _rich_text(node: Any) -> Iterator[str]:
    """Text leaves of a Contentful rich-text document (``nodeType``/``content``/``value``) or
    a Contentstack JSON RTE (``type``/``children``/``text``)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            leaf = current.get("value") if current.get("nodeType") == "text" \
                else current.get("text")
            if isinstance(leaf, str) and leaf:
                yield leaf
            children = current.get("content") or current.get("children")
            if isinstance(children, list):
                stack.extend(reversed(children))
        elif isinstance(current, list):
            stack.extend(reversed(current))


def _value_text(value: Any) -> str:
    """The text of one field value in one locale, its parts on lines of their own:
    :func:`plain_text`, with the common shapes (plain strings, arrays of them, links) taken
    without walking them."""
    kind = type(value)
    if kind is str:
        return value if "<" not in value else "\n".join(plain_text(value))
    if kind is list:
        if all(type(item) is str and "<" not in item for item in value):
            return "\n".join(item for item in value if item)
    elif kind is dict:
        if "sys" in value and "nodeType" not in value and "type" not in value:
            return ""  # a link
    elif not isinstance(value, (list, dict)):
        return ""
    return "\n".join(p for p in plain_text(value) if p)


class TextPlan:
    """Which locale's value of each field an entry's text in each locale takes: the chains
    :meth:`Record.field` reads, worked out once for one :class:`LocaleChain`, and once for
    each set of locales a field has values in (most fields of a space share a few)."""

    __slots__ = ("_chains", "_sources", "_unlocalized", "_unlocalized_chains", "_unsearched",
                 "chain", "locales")

    def __init__(self, chain: LocaleChain) -> None:
        self.chain = chain
        self.locales = tuple(chain.fallbacks)
        self._chains = {code: tuple(chain.chain(code)) for code in self.locales}
        self._unlocalized_chains = {code: chain.unlocalized_chain(code)
                                    for code in self.locales}
        self._unlocalized = chain.unlocalized
        self._unsearched = chain.unsearched
        # (unlocalized, the codes a field has values in) -> (code read, locales reading it)
        self._sources: dict[tuple[bool, tuple[str, ...]],
                            tuple[tuple[str, tuple[str, ...]], ...]] = {}

    def texts(self, document: dict[str, Any], content_type: str | None) -> dict[str, str]:
        """Locale → the entry's text there (locales where it has none are left out)."""
        fields = document.get("fields")
        if not isinstance(fields, dict):
            return {}
        unlocalized = self._unlocalized.get(content_type, ()) if content_type else ()
        unsearched = self._unsearched.get(content_type, ()) if content_type else ()
        parts: dict[str, list[str]] = {code: [] for code in self.locales}
        sources = self._sources
        for name, by_locale in fields.items():
            if not isinstance(by_locale, dict) or not by_locale or name in unsearched:
                continue
            key = (name in unlocalized, tuple(by_locale))
            found = sources.get(key)
            if found is None:
                found = sources[key] = self._sources_of(*key)
            for code, readers in found:
                part = _value_text(by_locale[code])
                if part:
                    for locale in readers:
                        parts[locale].append(part)
        return {locale: "\n".join(texts) for locale, texts in parts.items() if texts}

    def _sources_of(self, unlocalized: bool, codes: tuple[str, ...]
                    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """For a field with values in ``codes``: each code some locale reads, with those
        locales (the first code of each locale's chain that has a value)."""
        chains = self._unlocalized_chains if unlocalized else self._chains
        readers: dict[str, list[str]] = {}
        for locale, chain in chains.items():
            code = next((c for c in chain if c in codes), None)
            if code is not None:
                readers.setdefault(code, []).append(locale)
        return tuple((code, tuple(locales)) for code, locales in readers.items())


class PreparedTexts:
    """The texts of one page's entries, worked out on the thread that fetched the page while
    the writer applies the page before it; found again by the identity of each entry's
    document (the one the page's changes carry)."""

    def __init__(self, plan: TextPlan) -> None:
        self.plan = plan
        self._by_document: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}

    def add_deltas(self, deltas: Iterable[Delta]) -> None:
        """Work out the texts of the entries ``deltas`` carry whole. A document that fails is
        left to the writer, which extracts it again and reports what fails there."""
        for delta in deltas:
            document = delta.document
            if delta.record_type != "Entry" or delta.deleted or delta.merges \
                    or document is None:
                continue
            with contextlib.suppress(Exception):
                texts = self.plan.texts(document, delta.content_type)
                self._by_document[id(document)] = (document, texts)

    def take(self, document: dict[str, Any]) -> dict[str, str] | None:
        found = self._by_document.pop(id(document), None)
        return found[1] if found is not None and found[0] is document else None


class TextsAhead:
    """Entries' texts extracted on the thread that fetches pages, while the writer applies the
    page before (in SQLite, with the GIL released): the writer's share of a page's index work
    is then the FTS5 inserts. One per page loop; the writer finds it through its thread.

    The fetch thread extracts with the chain the writer last indexed with; a page the chain
    changed for (or the first two pages, fetched before the writer named one) is extracted by
    the writer as before."""

    _local = threading.local()

    def __init__(self, outer: TextsAhead | None = None) -> None:
        self._plan: TextPlan | None = None
        self._outer = outer
        #: The prepared texts of the page the writer is applying now.
        self.page: PreparedTexts | None = None

    @classmethod
    def begin(cls) -> TextsAhead:
        """A page loop starts on this (the writer's) thread; one running already (a signal
        receiver that syncs another cache) gets its own back at :meth:`end`."""
        ahead = cls(getattr(cls._local, "ahead", None))
        cls._local.ahead = ahead
        return ahead

    def end(self) -> None:
        if getattr(self._local, "ahead", None) is self:
            self._local.ahead = self._outer

    def start(self) -> PreparedTexts | None:
        """On the fetch thread: where a fetched page's texts go, if the writer has named its
        chain."""
        plan = self._plan
        return PreparedTexts(plan) if plan is not None else None

    @classmethod
    def for_page(cls, chain: LocaleChain) -> PreparedTexts | None:
        """On the writer's thread, for the page it indexes with ``chain``: the texts prepared
        with that chain, if any; the next pages are prepared with it."""
        ahead: TextsAhead | None = getattr(cls._local, "ahead", None)
        if ahead is None:
            return None
        plan = ahead._plan
        if plan is None or plan.chain is not chain:
            plan = ahead._plan = TextPlan(chain)
        page = ahead.page
        return page if page is not None and page.plan is plan else None


# -- writing ---------------------------------------------------------------------------------


def index_changes(conn: sqlite3.Connection, changes: PageChanges, locales: LocaleChain,
                  prepared: PreparedTexts | None = None) -> None:
    """Rewrite the rows of every entry ``changes`` names; in the page's transaction. Texts
    ``prepared`` with the same chain are used as they are."""
    if not any(c.record_type == "Entry"
               for c in (*changes.added, *changes.updated, *changes.deleted)):
        return
    tables = _tables_for(conn, locales)
    # An added entry was absent, and so were its rows: only the others have rows to drop
    # (looking the added ones up too cost 3% of an initial sync's index work).
    _delete(conn, tables.values(), [c.id for c in (*changes.updated, *changes.deleted)
                                    if c.record_type == "Entry"])
    present = list({c.id: c for c in (*changes.added, *changes.updated)
                    if c.record_type == "Entry"}.values())
    unread = [c.id for c in present if c.document is None]
    documents = dict(_read_documents(conn, unread)) if unread else {}
    if prepared is None or prepared.plan.chain is not locales:
        plan, prepared = TextPlan(locales), None
    else:
        plan = prepared.plan
    entries = []
    for change in present:
        document = change.document if change.document is not None \
            else documents.get(change.id)
        if document is None:
            continue
        texts = prepared.take(document) if prepared is not None else None
        if texts is None:
            texts = plan.texts(document, change.content_type)
        entries.append((change.id, change.content_type, texts))
    _insert(conn, tables, entries, _next_row(conn))


def _tables_for(conn: sqlite3.Connection, locales: LocaleChain) -> dict[str, str]:
    """Each locale's table, created where the locale is new."""
    tables = _locale_tables(conn)
    for code in locales.fallbacks:
        if code not in tables:
            tables[code] = _create_table(conn, code)
    return {code: tables[code] for code in locales.fallbacks}


def _delete(conn: sqlite3.Connection, tables: Iterable[str], ids: Sequence[str]) -> None:
    rows: list[int] = []
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows.extend(r for (r,) in conn.execute(
            f"SELECT row FROM search_index WHERE entry_id IN ({marks})", chunk))
    if not rows:
        return
    # In rowid order: FTS5 writes out what it holds in memory when a rowid goes backwards.
    params = [(r,) for r in sorted(rows)]
    for table in tables:
        conn.executemany(f"DELETE FROM {table} WHERE rowid = ?", params)
    conn.executemany("DELETE FROM search_index WHERE row = ?", params)


def _next_row(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(row), 0) + 1 FROM search_index").fetchone()[0])


def _insert(conn: sqlite3.Connection, tables: dict[str, str],
            entries: Iterable[tuple[str, str | None, dict[str, str]]], row: int) -> int:
    """Write each entry's texts under a new rowid, rising; returns the next one."""
    by_table: dict[str, list[tuple[int, str]]] = {table: [] for table in tables.values()}
    mapped: list[tuple[int, str, str | None]] = []
    for entry_id, content_type, texts in entries:
        if not texts:
            continue
        mapped.append((row, entry_id, content_type))
        for locale, text in texts.items():
            by_table[tables[locale]].append((row, text))
        row += 1
    conn.executemany("INSERT INTO search_index (row, entry_id, content_type) VALUES (?, ?, ?)",
                     mapped)
    for table, rows in by_table.items():
        if rows:
            conn.executemany(f"INSERT INTO {table} (rowid, text) VALUES (?, ?)", rows)
    return row


def _read_documents(conn: sqlite3.Connection,
                    ids: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    for start in range(0, len(ids), 900):
        chunk = list(ids[start:start + 900])
        marks = ",".join("?" * len(chunk))
        for record_id, raw in conn.execute(
                f"SELECT id, raw FROM entries WHERE id IN ({marks})", chunk):
            document = json.loads(raw)
            if isinstance(document, dict):
                yield record_id, document


def rebuild_index(conn: sqlite3.Connection, locales: LocaleChain, batch: int = 1000) -> None:
    """Every row anew (the locales changed, or search was just turned on); in a write
    transaction. Each locale's table is made afresh: dropping one is quicker than deleting
    its rows, which FTS5 does one by one."""
    for table in _locale_tables(conn).values():
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DELETE FROM search_index")
    tables = _tables_for(conn, locales)
    plan = TextPlan(locales)
    cursor = conn.execute("SELECT id, content_type, raw FROM entries")
    row = 1
    while True:
        found = cursor.fetchmany(batch)
        if not found:
            return
        entries = []
        for record_id, content_type, raw in found:
            document = json.loads(raw)
            if isinstance(document, dict):
                entries.append((record_id, content_type, plan.texts(document, content_type)))
        row = _insert(conn, tables, entries, row)


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchRow:
    id: str
    score: float
    text: str


def search_rows(conn: sqlite3.Connection, text: str, locale: str,
                content_type: str | None, limit: int,
                ranked: int | None = None) -> list[SearchRow]:
    """Entries whose text in ``locale`` has, for every word of ``text``, a word beginning
    with it; best bm25 first, the newest first among equals.

    bm25 ranks the newest ``ranked`` matches (default :data:`RANKED_MATCHES`, at least
    ``limit``): FTS5 yields a query's matches newest row first without ranking them, so
    ranking stops after that many, and a search that matches no more is exact. The document
    frequencies and lengths bm25 weighs are those of the whole locale."""
    terms = words(text)
    table = _table(locale)
    if not terms or not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                                     (table,)).fetchone():
        return []
    query = " AND ".join(_quoted(t) + "*" for t in terms)
    # A named type is looked up for each match, newest first, until ``cap`` of it are found.
    of_type = "" if content_type is None else (
        f"AND EXISTS (SELECT 1 FROM search_index AS m WHERE m.row = {table}.rowid "
        "AND m.content_type = :type) ")
    cap = max(limit, RANKED_MATCHES if ranked is None else ranked)
    best = conn.execute(
        f"SELECT row, score FROM (SELECT rowid AS row, bm25({table}) AS score "
        f"FROM {table} WHERE {table} MATCH :query {of_type}"
        "ORDER BY rowid DESC LIMIT :cap) ORDER BY score, row DESC LIMIT :limit",
        {"query": query, "type": content_type, "cap": cap, "limit": limit}).fetchall()
    found = []
    for row, score in best:
        entry = conn.execute("SELECT entry_id FROM search_index WHERE row = ?",
                             (row,)).fetchone()
        body = conn.execute(f"SELECT text FROM {table} WHERE rowid = ?", (row,)).fetchone()
        if entry is not None and body is not None:
            found.append(SearchRow(entry[0], -float(score), body[0]))
    return found


def snippet(body: str, text: str, width: int = 40) -> str:
    """The text around the first matching word, matching words in [brackets]."""
    prefixes = tuple(fold(t) for t in words(text))
    found: list[re.Match[str]] = []
    start, end = 0, min(len(body), width * 2)
    for m in _WORD.finditer(body) if prefixes else ():
        if found and m.end() > end:
            break
        word = m.group()
        if (word.lower() if word.isascii() else fold(word)).startswith(prefixes):
            if not found:
                start = max(0, m.start() - width)
                end = min(len(body), m.start() + width * 2)
                if m.end() > end:
                    break
            found.append(m)
    pieces, at = [], start
    for m in found:
        pieces.append(body[at:m.start()] + "[" + m.group() + "]")
        at = m.end()
    pieces.append(body[at:end])
    window = " ".join("".join(pieces).split())
    return ("…" if start > 0 else "") + window + ("…" if end < len(body) else "")
