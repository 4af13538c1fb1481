"""Full-text search: an FTS5 index over the text of every entry, one row per entry and locale.

A row holds what :meth:`Record.field` shows in its locale, after fallback: text and symbol
fields, arrays of them, and the plain text of rich text (Contentful rich-text documents,
Contentstack JSON RTE and HTML, Kontent.ai ``rich_text`` HTML). The sync engine rewrites the
rows of every entry a page changed inside that page's transaction, so a search never sees half
a page; a change of the locales' fallbacks rewrites them all.

The index uses FTS5's ``trigram`` tokenizer: a search term matches any case-insensitive
substring of the text (``"ell"`` finds "Hello"), which is what a search box promises, and the
caller's text is only ever a quoted FTS5 string, so ``"``, ``*``, ``NEAR`` and ``-`` are
searched for, never parsed. Terms shorter than three characters, which trigrams cannot index,
are matched by a scan (``LIKE``, ASCII case-insensitive). Where the SQLite build lacks FTS5,
:func:`ensure_index` reports it and nothing else is affected.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from .apply import PageChanges
from .query import LocaleChain

__all__ = [
    "SearchRow",
    "drop_index",
    "ensure_index",
    "index_changes",
    "plain_text",
    "rebuild_index",
    "search_rows",
]

_SEP = "\x1f"  # wraps the exact-match columns, so "en" never matches inside "en-US"
_CREATE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_index USING fts5("
    "entry_id, locale, content_type, text, tokenize = 'trigram', detail = 'full')"
)
_INSERT = "INSERT INTO search_index (entry_id, locale, content_type, text) VALUES (?, ?, ?, ?)"
_DELETE = "DELETE FROM search_index WHERE search_index MATCH ?"
_HTML_TAG = re.compile(r"<[A-Za-z/!][^>]*>")
_CHUNK = 200
_KONTENT_TEXT = ("text", "rich_text", "url_slug", "custom")


def ensure_index(conn: sqlite3.Connection) -> str | None:
    """Create the index if it is missing; in a write transaction. Returns why search cannot
    work on this SQLite build (no FTS5 module), or None."""
    try:
        conn.execute(_CREATE)
        # Rank by the text column alone; the exact-match columns only filter.
        conn.execute("INSERT INTO search_index (search_index, rank) "
                     "VALUES ('rank', 'bm25(0.0, 0.0, 0.0, 1.0)')")
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc).lower() or "tokenizer" in str(exc).lower():
            return f"this SQLite build ({sqlite3.sqlite_version}) has no FTS5 trigram index"
        raise
    return None


def has_index(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'search_index'").fetchone()
    return row is not None


def drop_index(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS search_index")


def _exact(value: str) -> str:
    return f"{_SEP}{value}{_SEP}"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


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
    text documents of the three vendors, Kontent.ai elements' values. Links, numbers, dates,
    locations and other objects hold no searchable text."""
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


def _document_text(fields: dict[str, Any], locales: LocaleChain, locale: str) -> str:
    parts: list[str] = []
    for by_locale in fields.values():
        if not isinstance(by_locale, dict):
            continue
        for code in locales.chain(locale):
            if code in by_locale:
                parts.extend(plain_text(by_locale[code]))
                break
    return "\n".join(p for p in parts if p)


def _rows_of(record_id: str, content_type: str | None, document: dict[str, Any],
             locales: LocaleChain) -> Iterator[tuple[str, str, str, str]]:
    fields = document.get("fields")
    if not isinstance(fields, dict):
        return
    for locale in locales.fallbacks:
        text = _document_text(fields, locales, locale)
        if text:
            yield (_exact(record_id), _exact(locale), _exact(content_type or ""), text)


# -- writing ---------------------------------------------------------------------------------


def _delete(conn: sqlite3.Connection, ids: Iterable[str]) -> None:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start:start + _CHUNK]
        query = "entry_id : (" + " OR ".join(_quoted(_exact(i)) for i in chunk) + ")"
        conn.execute(_DELETE, (query,))


def index_changes(conn: sqlite3.Connection, changes: PageChanges, locales: LocaleChain) -> None:
    """Rewrite the rows of every entry ``changes`` names; in the page's transaction."""
    entries = [c for c in (*changes.added, *changes.updated, *changes.deleted)
               if c.record_type == "Entry"]
    if not entries:
        return
    _delete(conn, (c.id for c in entries))
    present = [c for c in (*changes.added, *changes.updated) if c.record_type == "Entry"]
    unread = [c.id for c in present if c.document is None]
    documents = dict(_read_documents(conn, unread)) if unread else {}
    rows: list[tuple[str, str, str, str]] = []
    for change in present:
        document = change.document if change.document is not None \
            else documents.get(change.id)
        if document is not None:
            rows.extend(_rows_of(change.id, change.content_type, document, locales))
    conn.executemany(_INSERT, rows)


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


def rebuild_index(conn: sqlite3.Connection, locales: LocaleChain, batch: int = 500) -> None:
    """Every row anew (the locales changed, or search was just turned on); in a write
    transaction."""
    conn.execute("DELETE FROM search_index")
    cursor = conn.execute("SELECT id, content_type, raw FROM entries")
    while True:
        found = cursor.fetchmany(batch)
        if not found:
            return
        rows: list[tuple[str, str, str, str]] = []
        for record_id, content_type, raw in found:
            document = json.loads(raw)
            if isinstance(document, dict):
                rows.extend(_rows_of(record_id, content_type, document, locales))
        conn.executemany(_INSERT, rows)


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchRow:
    id: str
    score: float
    text: str


def search_rows(conn: sqlite3.Connection, text: str, locale: str,
                content_type: str | None, limit: int) -> list[SearchRow]:
    """Entries whose text in ``locale`` contains every whitespace-separated term of ``text``
    (case-insensitive), best bm25 first."""
    terms = text.split()
    if not terms:
        return []
    long_terms = [t for t in terms if len(t) >= 3]
    short_terms = [t for t in terms if len(t) < 3]
    query = f"locale : {_quoted(_exact(locale))}"
    if content_type is not None:
        query += f" AND content_type : {_quoted(_exact(content_type))}"
    if long_terms:
        query += " AND text : (" + " AND ".join(_quoted(t) for t in long_terms) + ")"
    sql = "SELECT entry_id, rank, text FROM search_index WHERE search_index MATCH ?"
    params: list[Any] = [query]
    for term in short_terms:
        sql += " AND text LIKE ? ESCAPE '\\'"
        params.append("%" + term.replace("\\", "\\\\").replace("%", "\\%")
                      .replace("_", "\\_") + "%")
    sql += " ORDER BY rank LIMIT ?"
    params.append(limit)
    return [SearchRow(entry_id.strip(_SEP), -float(rank), body)
            for entry_id, rank, body in conn.execute(sql, params)]


def snippet(body: str, text: str, width: int = 32) -> str:
    """The text around the first match, the matched terms in [brackets]."""
    terms = sorted({t.lower() for t in text.split()}, key=len, reverse=True)
    lowered = body.lower()
    first = min((i for i in (lowered.find(t) for t in terms) if i >= 0), default=0)
    start, end = max(0, first - width), min(len(body), first + width * 2)
    window = body[start:end]
    if terms:
        pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
        window = pattern.sub(lambda m: f"[{m.group(0)}]", window)
    window = " ".join(window.split())
    return ("…" if start > 0 else "") + window + ("…" if end < len(body) else "")
