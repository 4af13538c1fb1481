"""Links between records, for all three vendors: derived by triggers, read back both ways.

The ``links`` table holds one row per link inside an entry's fields, in each locale, written by
triggers from the stored document (so it can never disagree with the entry):

- Contentful: ``Link`` objects (``{"sys": {"type": "Link", "linkType", "id"}}``), alone or in
  arrays;
- Contentstack: reference fields (``[{"uid", "_content_type_uid"}]``; ``sys_assets`` names an
  asset) and asset fields (the asset object: ``uid``, ``url``, ``filename``), alone or in arrays;
- Kontent.ai: ``modular_content`` elements and the linked items of ``rich_text`` elements.
  These name items by codename, so their rows have ``target_type = 'Codename'``, and the
  ``entry_codenames`` index (id → codename, kept after deletion, as ``entry_types`` is) maps
  them to ids when read.

An index on ``links(target_id)`` makes :func:`referrers` cost O(referrers).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ANY_LINKS_OF_NEW",
    "CODENAMES_DDL",
    "CODENAME_TRIGGER_SQL",
    "CONTENTFUL_LINKS",
    "CONTENTFUL_LINKS_ONE_PASS",
    "LINKS_OF_NEW",
    "LINK_ROWS_OF_NEW",
    "VENDOR_LINKS_OF_NEW",
    "LinkTarget",
    "codename_ids",
    "holds_many",
    "link_targets",
    "links_from",
    "links_update_body",
    "referrers",
]

LinkTarget = tuple[str, str]
"""(``"Entry"`` | ``"Asset"`` | ``"Codename"``, the target's id or Kontent.ai codename)."""

# Contentful Link objects, alone or in arrays: all that schema version 1 derived. (Version 1
# to 5 stores keep this text in their triggers; :data:`CONTENTFUL_LINKS_ONE_PASS` derives the
# same rows.)
CONTENTFUL_LINKS = """
    SELECT NEW.id, f.key, l.key, 0, json_extract(l.value, '$.sys.linkType'),
           json_extract(l.value, '$.sys.id')
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l
     WHERE f.type = 'object' AND l.type = 'object'
       AND json_extract(l.value, '$.sys.type') = 'Link'
    UNION ALL
    SELECT NEW.id, f.key, l.key, a.key, json_extract(a.value, '$.sys.linkType'),
           json_extract(a.value, '$.sys.id')
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l, json_each(l.value) AS a
     WHERE f.type = 'object' AND l.type = 'array' AND a.type = 'object'
       AND json_extract(a.value, '$.sys.type') = 'Link'
"""
# The same rows in one walk of the document (a single link is taken as an array of one, at
# position 0), and only through fields whose text holds the word "Link" (an object with
# ``"type": "Link"`` cannot be written without it): SQLite 3.40 parses the JSON again for
# every json_each and json_extract, and this cost half the links triggers' time of a
# Contentful initial sync. The fields' own keys are never looked at, so a field named "Link"
# or a text holding the word only costs a walk.
CONTENTFUL_LINKS_ONE_PASS = """
    SELECT NEW.id, f.key, l.key, CASE l.type WHEN 'array' THEN a.key ELSE 0 END,
           json_extract(a.value, '$.sys.linkType'), json_extract(a.value, '$.sys.id')
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l,
           json_each(CASE l.type WHEN 'array' THEN l.value ELSE json_array(l.value) END) AS a
     WHERE f.type = 'object' AND instr(f.value, '"Link"') > 0
       AND l.type IN ('object', 'array') AND a.type = 'object'
       AND json_extract(a.value, '$.sys.type') = 'Link'
"""
# A Contentstack reference names its content type; an asset field holds the asset object.
_CS_TARGET = """(CASE WHEN json_extract({v}, '$._content_type_uid') IS NULL
                      OR json_extract({v}, '$._content_type_uid') = 'sys_assets'
                 THEN 'Asset' ELSE 'Entry' END)"""
_CS_IS_LINK = """(json_type({v}, '$.uid') = 'text'
                  AND (json_type({v}, '$._content_type_uid') = 'text'
                       OR (json_type({v}, '$.url') = 'text'
                           AND json_type({v}, '$.filename') = 'text')))"""
_CONTENTSTACK = f"""
    UNION ALL
    SELECT NEW.id, f.key, l.key, 0, {_CS_TARGET.format(v="l.value")},
           json_extract(l.value, '$.uid')
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l
     WHERE f.type = 'object' AND l.type = 'object' AND {_CS_IS_LINK.format(v="l.value")}
    UNION ALL
    SELECT NEW.id, f.key, l.key, a.key, {_CS_TARGET.format(v="a.value")},
           json_extract(a.value, '$.uid')
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l, json_each(l.value) AS a
     WHERE f.type = 'object' AND l.type = 'array' AND a.type = 'object'
       AND {_CS_IS_LINK.format(v="a.value")}
"""
_KONTENT = """
    UNION ALL
    SELECT NEW.id, f.key, l.key, m.key, 'Codename', m.value
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l,
           json_each(l.value, '$.value') AS m
     WHERE f.type = 'object' AND l.type = 'object'
       AND json_extract(l.value, '$.type') = 'modular_content'
       AND json_type(l.value, '$.value') = 'array' AND m.type = 'text'
    UNION ALL
    SELECT NEW.id, f.key, l.key, m.key, 'Codename', m.value
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l,
           json_each(l.value, '$.modular_content') AS m
     WHERE f.type = 'object' AND l.type = 'object'
       AND json_extract(l.value, '$.type') = 'rich_text'
       AND json_type(l.value, '$.modular_content') = 'array' AND m.type = 'text'
"""
LINKS_OF_NEW = (
    "INSERT OR IGNORE INTO links (source_id, field, locale, position, target_type, target_id) "
    + CONTENTFUL_LINKS + _CONTENTSTACK + _KONTENT + ";"
)
"""The body of the entries triggers of schema versions 3 and 4: every link of ``NEW``, for the
three vendors at once."""

_INSERT_LINKS = ("INSERT OR IGNORE INTO links (source_id, field, locale, position, target_type, "
                 "target_id) ")
# From schema version 5, the store's vendor picks its own link queries: walking an entry's JSON
# for the other two vendors' shapes took half the time of a Contentful page's inserts.
# (A store with no vendor recorded, as a bare Store in tests, derives all of them.)
LINK_ROWS_OF_NEW: dict[str, str] = {
    "contentful": CONTENTFUL_LINKS_ONE_PASS,
    "contentstack": _CONTENTSTACK.replace("UNION ALL", "", 1),
    "kontent": _KONTENT.replace("UNION ALL", "", 1),
    "any": CONTENTFUL_LINKS_ONE_PASS + _CONTENTSTACK + _KONTENT,
}
"""Per vendor (``"any"``: a store with no vendor recorded), the query of ``NEW``'s link rows,
in the links table's column order."""
VENDOR_LINKS_OF_NEW: dict[str, str] = {
    vendor: _INSERT_LINKS + LINK_ROWS_OF_NEW[vendor] + ";"
    for vendor in ("contentful", "contentstack", "kontent")
}
"""Per vendor, the trigger body that derives the links of ``NEW`` (Kontent.ai's codename row
is :data:`CODENAME_TRIGGER_SQL`)."""
ANY_LINKS_OF_NEW = _INSERT_LINKS + LINK_ROWS_OF_NEW["any"] + ";"
"""Every vendor's links of ``NEW`` (a store with no vendor recorded), from schema version 6."""


def links_update_body(rows: str) -> str:
    """From schema version 8, the body of an update trigger: bring ``NEW``'s links to
    ``rows`` (one of :data:`LINK_ROWS_OF_NEW`) by deleting the stored rows the new document
    no longer holds and inserting the ones it adds. A link left as it was is not written:
    editing an entry's text dirtied every page of the links table and of its target index
    that held one of the entry's links (the delete and insert of the same rows), which was
    a fifth of what a delta sync wrote. The document is walked twice (once for each
    statement) instead of once."""
    stored = ("SELECT source_id, field, locale, position, target_type, target_id FROM links "
              "WHERE source_id = {} ")
    # Not INSERT OR IGNORE for the rows already stored: a trigger takes the conflict policy
    # of the statement that fired it, and the entries upsert's is ABORT.
    # ``rows`` may be a compound (A UNION ALL B): SQLite reads compound operators left to
    # right, so it is subtracted as one subquery, not as "(stored EXCEPT A) UNION ALL B".
    return (
        "DELETE FROM links WHERE source_id = OLD.id AND (field, locale, position) IN ("
        "SELECT field, locale, position FROM (" + stored.format("OLD.id") + "EXCEPT "
        "SELECT * FROM (" + rows + "))); "
        + _INSERT_LINKS + rows + " EXCEPT " + stored.format("NEW.id") + ";"
    )

CODENAMES_DDL = (
    "CREATE TABLE IF NOT EXISTS entry_codenames (id TEXT PRIMARY KEY NOT NULL, "
    "codename TEXT NOT NULL) WITHOUT ROWID"
)
"""Kontent.ai's codename → id index (looked up by codename: see ``schema.py``'s index)."""

CODENAME_TRIGGER_SQL = """
    INSERT INTO entry_codenames (id, codename)
    SELECT NEW.id, json_extract(v.value, '$.payload.system.codename')
      FROM json_each(NEW.raw, '$.vendor') AS v
     WHERE json_type(v.value, '$.payload.system.codename') = 'text'
     LIMIT 1
    ON CONFLICT(id) DO UPDATE SET codename = excluded.codename
     WHERE codename IS NOT excluded.codename;
"""
"""A Kontent.ai item's codename (any language variant names it), kept after deletion."""

_CHUNK = 900  # bound parameters per statement: under SQLite's oldest limit (999)


def _kontent_element(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in ("modular_content", "rich_text") \
        and "value" in value


def holds_many(value: Any) -> bool:
    """Whether a field value is a list of links (an array, a Kontent.ai element) rather than
    one link: :meth:`Record.resolve` answers a list for it, else one record or None."""
    return isinstance(value, list) or _kontent_element(value)


def link_targets(value: Any) -> list[LinkTarget]:
    """The link targets in one field value (one locale), in order: what the triggers derive,
    read in Python for :meth:`Record.resolve`."""
    if _kontent_element(value):
        names = value.get("value") if value["type"] == "modular_content" \
            else value.get("modular_content")
        if not isinstance(names, list):
            return []
        return [("Codename", n) for n in names if isinstance(n, str)]
    items = value if isinstance(value, list) else [value]
    out: list[LinkTarget] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        sys = item.get("sys")
        if isinstance(sys, dict) and sys.get("type") == "Link":
            if isinstance(sys.get("id"), str):
                out.append((str(sys.get("linkType")), sys["id"]))
        elif isinstance(item.get("uid"), str) and (
                isinstance(item.get("_content_type_uid"), str)
                or (isinstance(item.get("url"), str) and isinstance(item.get("filename"), str))):
            kind = item.get("_content_type_uid")
            out.append(("Entry" if isinstance(kind, str) and kind != "sys_assets" else "Asset",
                         item["uid"]))
    return out


def _chunks(values: Sequence[str], size: int = _CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start:start + size])


def codename_ids(conn: sqlite3.Connection, codenames: Sequence[str]) -> dict[str, str]:
    """codename → id of the Kontent.ai items the store has known."""
    found: dict[str, str] = {}
    for chunk in _chunks(list(dict.fromkeys(codenames))):
        marks = ",".join("?" * len(chunk))
        found.update(conn.execute(
            f"SELECT codename, id FROM entry_codenames WHERE codename IN ({marks})", chunk))
    return found


def links_from(conn: sqlite3.Connection, sources: Sequence[str]) -> list[LinkTarget]:
    """The distinct targets the stored entries ``sources`` link to, in any field and locale
    (one seek per source: ``source_id`` leads the links table's primary key)."""
    found: dict[LinkTarget, None] = {}
    for chunk in _chunks(list(dict.fromkeys(sources))):
        marks = ",".join("?" * len(chunk))
        found.update(dict.fromkeys(conn.execute(
            f"SELECT target_type, target_id FROM links WHERE source_id IN ({marks})", chunk)))
    return list(found)


def referrers(conn: sqlite3.Connection, ids: Sequence[str]) -> list[str]:
    """Ids of stored entries whose fields link to any record with one of ``ids`` (entry or
    asset), in id order. A Kontent.ai item is also found by its codename, which
    ``entry_codenames`` keeps after the item is deleted. One seek in the target index per id
    and per referring link."""
    ids = list(dict.fromkeys(ids))
    sources: set[str] = set()
    for chunk in _chunks(ids, _CHUNK // 2):  # each id is bound twice
        marks = ",".join("?" * len(chunk))
        sources.update(row[0] for row in conn.execute(
            f"SELECT source_id FROM links WHERE target_id IN ({marks}) "
            f"AND target_type IN ('Entry', 'Asset') "
            f"UNION SELECT l.source_id FROM entry_codenames AS c "
            f"JOIN links AS l ON l.target_id = c.codename AND l.target_type = 'Codename' "
            f"WHERE c.id IN ({marks})", chunk + chunk))
    return sorted(sources)
