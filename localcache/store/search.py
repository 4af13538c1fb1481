"""Full-text search: an FTS5 index over the text of every entry, one table per locale.

A locale's table holds, for each entry, what :meth:`Record.field` shows in that locale after
fallback (unlocalized fields read from the default locale first, as there): text and symbol
fields, arrays of them, and the plain text of rich text (Contentful rich-text documents,
Contentstack JSON RTE and HTML, Kontent.ai ``rich_text`` HTML). ``search_index`` maps each
entry to the rowid its rows have in every locale's table, and holds its content type. The
sync engine rewrites the rows of
every entry a page changed inside that page's transaction, so a search never sees half a page;
a change of the locales' fallbacks rewrites them all.

The tables keep no copy of the text (FTS5 ``content=''``): the text of a row is worked out
again from the stored entry whenever it is needed, to show a snippet or to delete the row,
which FTS5 does by the words it was made of. The engine reads what the index holds for the
entries a page names before the page rewrites them (:func:`indexed_texts`). A stored copy cost
a third of the index's write time and 40% of its size; a text worked out again is the same
text, since it depends only on the stored entry and the locale chain, and a change of the
chain (fallbacks, or content types: unlocalized and unsearched fields) rebuilds the index.

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

import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .apply import PageChanges
from .query import LocaleChain, chain_for
from .texts import PreparedTexts, TextPlan, TextsAhead, entry_text, plain_text, plan_for

__all__ = [
    "RANKED_MATCHES",
    "Indexed",
    "PreparedTexts",
    "SearchRow",
    "TextPlan",
    "TextsAhead",
    "drop_index",
    "ensure_index",
    "entry_text",
    "has_index",
    "index_changes",
    "indexed_texts",
    "missing_fts5",
    "plain_text",
    "plan_for",
    "rebuild_index",
    "search_rows",
    "snippet",
    "upgrade_legacy_index",
    "upgrade_stored_text_index",
]

#: How many matches bm25 ranks at most: the newest rows (entries synced or changed last).
#: Ranking costs a few microseconds a row, so a word found in most of a large store would
#: otherwise cost tens of milliseconds; a search with this many matches or fewer is exact.
RANKED_MATCHES = 1000

_CONTENTLESS = "content = ''"
_CREATE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
    "text, tokenize = 'unicode61 remove_diacritics 2', detail = 'full', " + _CONTENTLESS + ")"
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
_CHUNK = 500


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


def upgrade_stored_text_index(conn: sqlite3.Connection) -> None:
    """Schema version 7: an index whose tables keep a copy of the text (made before version
    7) is built again without, in the migration's transaction; where FTS5 is missing, it
    stays as it is and is dropped where the store is next opened for search."""
    if has_index(conn) and missing_fts5(conn) is None and any(
            _CONTENTLESS not in sql for sql in _locale_sql(conn).values()):
        rebuild_index(conn, chain_for(conn))


def _table(locale: str) -> str:
    return _PREFIX + locale.encode("utf-8").hex()


def _locale_tables(conn: sqlite3.Connection) -> dict[str, str]:
    """Locale code → its FTS5 table, as the file has them."""
    return {bytes.fromhex(name[len(_PREFIX):]).decode("utf-8", "replace"): name
            for name in _locale_sql(conn)}


def _locale_sql(conn: sqlite3.Connection) -> dict[str, str]:
    """Each locale's FTS5 table → the SQL that made it."""
    found = {}
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                  "AND name GLOB 'search_text_*'"):
        code = name[len(_PREFIX):]
        if re.fullmatch(r"(?:[0-9a-f]{2})+", code) and _is_virtual(sql):
            found[name] = str(sql)
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


# -- writing ---------------------------------------------------------------------------------


#: Entry id → its row in the index and its texts there (locale → text), as
#: :func:`indexed_texts` read them; texts None where the entry is not stored.
Indexed = dict[str, tuple[int, dict[str, str] | None]]

_INDEXED = ("SELECT s.entry_id, s.row, s.content_type, e.raw FROM search_index AS s "
            "LEFT JOIN entries AS e ON e.id = s.entry_id WHERE ")


def indexed_texts(conn: sqlite3.Connection, locales: LocaleChain, ids: Iterable[str] = (),
                  content_types: Iterable[str] = ()) -> Indexed:
    """What the index holds for the entries ``ids`` and every entry of ``content_types``: each
    one's row and texts, worked out from the stored entry with the chain it was indexed
    with. Read before a page rewrites them, in its transaction: deleting a row takes the text
    it was made of, and the stored entry is the one place that text is kept."""
    statements: list[tuple[str, list[str]]] = []
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start:start + _CHUNK]
        statements.append((f"s.entry_id IN ({','.join('?' * len(chunk))})", chunk))
    statements.extend(("s.content_type = ?", [t]) for t in dict.fromkeys(content_types))
    found: Indexed = {}
    plan: TextPlan | None = None
    for condition, params in statements:
        for entry_id, row, content_type, raw in conn.execute(_INDEXED + condition, params):
            texts = None
            document = json.loads(raw) if raw is not None else None
            if isinstance(document, dict):
                plan = plan if plan is not None else TextPlan(locales)
                texts = plan.texts(document, content_type)
            found[entry_id] = (row, texts)
    return found


def index_changes(conn: sqlite3.Connection, changes: PageChanges, locales: LocaleChain,
                  prepared: PreparedTexts | None, indexed: Indexed) -> None:
    """Rewrite the rows of every entry ``changes`` names; in the page's transaction. Texts
    ``prepared`` with the same chain are used as they are. ``indexed``: what
    :func:`indexed_texts` read before the page was written, for at least the entries it
    updated or deleted (a row it has no text for is left in its FTS5 table, out of reach)."""
    if not any(c.record_type == "Entry"
               for c in (*changes.added, *changes.updated, *changes.deleted)):
        return
    tables = _tables_for(conn, locales)
    # An added entry was absent, and so were its rows: only the others have rows to drop
    # (looking the added ones up too cost 3% of an initial sync's index work), and any the
    # engine found.
    gone = [c.id for c in (*changes.updated, *changes.deleted) if c.record_type == "Entry"]
    gone.extend(c.id for c in changes.added if c.record_type == "Entry" and c.id in indexed)
    _delete(conn, tables, gone, indexed)
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
    _insert(conn, tables, entries, _next_row(conn, tables.values()))


def _tables_for(conn: sqlite3.Connection, locales: LocaleChain) -> dict[str, str]:
    """Each locale's table, created where the locale is new."""
    tables = _locale_tables(conn)
    for code in locales.fallbacks:
        if code not in tables:
            tables[code] = _create_table(conn, code)
    return {code: tables[code] for code in locales.fallbacks}


def _delete(conn: sqlite3.Connection, tables: dict[str, str], ids: Sequence[str],
            indexed: Indexed) -> None:
    """Drop the rows of ``ids``: from each locale's table with the text they were made of
    (FTS5's 'delete' command), and their entries in ``search_index``."""
    rows: list[int] = []
    by_table: dict[str, list[tuple[int, str]]] = {}
    unique = list(dict.fromkeys(ids))
    for entry_id in unique:
        found = indexed.get(entry_id)
        if found is None:
            continue
        row, texts = found
        rows.append(row)
        for locale, text in (texts or {}).items():
            table = tables.get(locale)
            if table is not None:
                by_table.setdefault(table, []).append((row, text))
    unknown = [entry_id for entry_id in unique if entry_id not in indexed]
    for start in range(0, len(unknown), _CHUNK):  # rows no text was read for: out of reach
        chunk = unknown[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows.extend(r for (r,) in conn.execute(
            f"SELECT row FROM search_index WHERE entry_id IN ({marks})", chunk))
    # In rowid order: FTS5 writes out what it holds in memory when a rowid goes backwards.
    for table, deleted in by_table.items():
        conn.executemany(f"INSERT INTO {table} ({table}, rowid, text) VALUES ('delete', ?, ?)",
                         sorted(deleted))
    conn.executemany("DELETE FROM search_index WHERE row = ?", [(r,) for r in sorted(rows)])


def _next_row(conn: sqlite3.Connection, tables: Iterable[str]) -> int:
    """A rowid above every one in use, in ``search_index`` and in the tables (where a row
    out of reach may outlive its entry in ``search_index``)."""
    highest = [conn.execute("SELECT coalesce(max(row), 0) FROM search_index").fetchone()[0]]
    highest.extend(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}_docsize").fetchone()[0]
                   for table in tables)
    return int(max(highest)) + 1


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
        if entry is not None:
            found.append(SearchRow(entry[0], -float(score)))
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
