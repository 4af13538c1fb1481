"""Net counts of one sync, kept in the store so memory stays flat at any size.

A sync counts each record by its net effect: *added* when absent at the start and present at
the end, *deleted* when present at the start and absent at the end, *updated* when present at
both and changed in between. A record changed on several pages (added, then updated; or
unpublished, then published again) still counts once.

What a record was at the start is known the first time a page changes it: an add means it was
absent, an update or a deletion that it was present. That first sighting goes into the
``sync_tally`` table, in the page's own transaction (so a crash loses nothing the tally needs);
what it is at the end is read from the records themselves. A sync that starts on an empty store
needs no rows at all: everything present at the end was added.
"""

from __future__ import annotations

import sqlite3

from .apply import PageChanges

__all__ = ["NetCounts", "net_counts", "reset_tally", "store_is_empty", "tally_page"]

NetCounts = dict[tuple[str, str], int]
"""(record type, "added" | "updated" | "deleted") → count."""

_CREATE = (
    "CREATE TABLE IF NOT EXISTS sync_tally (record_type TEXT NOT NULL, id TEXT NOT NULL, "
    "present_before INTEGER NOT NULL, PRIMARY KEY (record_type, id)) WITHOUT ROWID"
)
_FIRST_SIGHTING = (
    "INSERT INTO sync_tally (record_type, id, present_before) VALUES (?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
_NET = (
    "SELECT t.record_type, t.present_before, "
    "CASE t.record_type WHEN 'Entry' THEN EXISTS (SELECT 1 FROM entries WHERE id = t.id) "
    "ELSE EXISTS (SELECT 1 FROM assets WHERE id = t.id) END AS present_after, count(*) "
    "FROM sync_tally AS t GROUP BY 1, 2, 3"
)


def store_is_empty(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM entries) "
                       "AND NOT EXISTS (SELECT 1 FROM assets)").fetchone()
    return bool(row[0])


def reset_tally(conn: sqlite3.Connection) -> None:
    """Start a sync's tally afresh; in a write transaction."""
    conn.execute(_CREATE)
    conn.execute("DELETE FROM sync_tally")


def tally_page(conn: sqlite3.Connection, changes: PageChanges) -> None:
    """Record the first sighting of each record this page changed; in the page's
    transaction, after :func:`reset_tally` ran in this sync."""
    rows = [(c.record_type, c.id, 0) for c in changes.added]
    rows += [(c.record_type, c.id, 1) for c in (*changes.updated, *changes.deleted)]
    if rows:
        conn.executemany(_FIRST_SIGHTING, rows)


def net_counts(conn: sqlite3.Connection, *, from_empty: bool) -> NetCounts:
    """The sync's net counts. ``from_empty``: the store held nothing when the sync began (no
    rows were tallied; every record present now was added)."""
    counts: NetCounts = {}
    if from_empty:
        for record_type, table in (("Entry", "entries"), ("Asset", "assets")):
            counts[(record_type, "added")] = conn.execute(
                f"SELECT count(*) FROM {table}").fetchone()[0]
        return counts
    for record_type, before, after, n in conn.execute(_NET):
        if before and after:
            what = "updated"
        elif before:
            what = "deleted"
        elif after:
            what = "added"
        else:
            continue
        counts[(record_type, what)] = counts.get((record_type, what), 0) + n
    return counts
