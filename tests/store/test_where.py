"""Queries (store/where.py, store/select.py) checked against a Python model of their semantics.

One store is synced from the emulator with awkward values (numbers, numeric strings, booleans,
JSON nulls, arrays with numbers and nested arrays, strings that look like JSON, Unicode case
pairs, links) in three locales with a fallback chain; a second store holds the same content
with hot fields declared, so every query also runs through the indexed columns. Hypothesis
draws ``where``/``order_by``/locale/paging combinations; ``entries``, ``count`` and
``iter_entries`` must all agree with the model, in both stores.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcache import Cache, Contentful, QueryError, Record
from localcache.emulator import Emulator, Locale, Space
from localcache.store import select as query_module
from localcache.store.indexes import field_chains
from localcache.store.query import chain_for

TOKEN = "where-test-token"
LOCALES = [None, "en-US", "de-DE", "de-AT"]
HOT = {"item": ["rank", "tags", "title", "ref"], "other": ["rank"]}

RANKS: list[Any] = [0, 1, 2, 3, 7, 10, 10, 2.5, -1, 1000, "7", "10", "b", True, False, None]
TAGS: list[Any] = [["a"], ["a", "b"], ["b", "c"], [], ["A"], "a", "b", [1, "a"], ["[x]"],
                   [["a"]], [{"a": 1}], ["x", None], 3]
TITLES: list[Any] = ["Apfel", "apfelkuchen", "Straße", "STRASSE", "Äpfel", "[draft] x",
                     "{brace}", "", "Birne", "zebra", "[1]", 5]
REFS: list[Any] = [{"sys": {"type": "Link", "linkType": "Entry", "id": "i00"}}, "plain",
                   {"a": 1}, [1, 2]]


def _maybe(rng: random.Random, pool: list[Any], missing: float) -> list[Any]:
    """A value for each locale (or none), so fallback has something to do."""
    if rng.random() < missing:
        return []
    values = [("en-US", rng.choice(pool))]
    if rng.random() < 0.4:
        values.append(("de-DE", rng.choice(pool)))
    if rng.random() < 0.15:
        values.append(("de-AT", rng.choice(pool)))
    return values


def build_space() -> Space:
    space = Space("wherespace", "master", locales=[
        Locale("en-US", default=True), Locale("de-DE", fallback="en-US"),
        Locale("de-AT", fallback="de-DE", optional=True)])
    mixed = [{"id": name, "name": name, "type": "Object", "localized": True}
             for name in ("rank", "tags", "title", "ref")]
    space.add_content_type("item", name="Item", fields=mixed)
    space.add_content_type("other", name="Other", fields=mixed[:1])
    rng = random.Random(5)
    for number in range(60):
        content_type = "item" if number < 50 else "other"
        fields: dict[str, dict[str, Any]] = {}
        pools = [("rank", RANKS, 0.15)]
        if content_type == "item":
            pools += [("tags", TAGS, 0.2), ("title", TITLES, 0.1), ("ref", REFS, 0.6)]
        for name, pool, missing in pools:
            values = _maybe(rng, pool, missing)
            if values:
                fields[name] = dict(values)
        space.publish_entry(f"i{number:02d}", content_type, fields)
    return space


def open_cache(path: Path, base_url: str, hot: bool) -> Cache:
    cache = Cache(Contentful("wherespace", TOKEN, "master", base_url=base_url), path=path)
    if hot:
        cache._use_field_indexes(HOT)
    return cache


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The plain and the hot store, with the probes' thresholds low enough to matter here."""
    directory = tmp_path_factory.mktemp("where")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(query_module, "_WIDE", 3)
        patch.setattr(query_module, "_STRIDE", 4)
        patch.setattr(query_module, "_DIRECTORY_FROM", 6)
        space = build_space()
        with Emulator(space, access_token=TOKEN, page_size=25) as emulator:
            plain = open_cache(directory / "plain.sqlite3", emulator.base_url, hot=False)
            hot = open_cache(directory / "hot.sqlite3", emulator.base_url, hot=True)
            plain.sync()
            hot.sync()
            records = plain.entries()
            yield {"plain": plain, "hot": hot, "records": records, "space": space,
                   "emulator": emulator}
            plain.close()
            hot.close()


# -- the model ----------------------------------------------------------------------------------

_SQLITE = sqlite3.connect(":memory:")


def key_value(record: Record, key: str, locale: str | None) -> Any:
    """The value a query compares: None when missing (absent, or JSON null)."""
    sys = {"sys.id": record.id, "sys.createdAt": record.created_at,
           "sys.updatedAt": record.updated_at, "sys.contentType": record.content_type}
    return sys[key] if key.startswith("sys.") else record.field(key, locale)


def _scalar(value: Any) -> bool:
    return value is not None and not isinstance(value, (list, dict))


def _eq(value: Any, operand: Any) -> bool:
    if _scalar(value) and value == operand:
        return True
    return isinstance(value, list) and any(_scalar(e) and e == operand for e in value)


def _range(value: Any, op: str, operand: Any) -> bool:
    if isinstance(operand, str):
        if not isinstance(value, str):
            return False
    elif not isinstance(value, (int, float)):
        return False
    return {"lt": value < operand, "lte": value <= operand, "gt": value > operand,
            "gte": value >= operand}[op]


def _match(value: Any, text: str) -> bool:
    folded = text.casefold()
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and folded in v.casefold() for v in values)


def holds(value: Any, op: str, operand: Any) -> bool:
    if op == "eq":
        return _eq(value, operand)
    if op == "ne":
        return not _eq(value, operand)
    if op == "in":
        return any(_eq(value, x) for x in operand)
    if op == "nin":
        return not any(_eq(value, x) for x in operand)
    if op == "exists":
        return (value is not None) == operand
    if op == "match":
        return _match(value, operand)
    return _range(value, op, operand)


def order_key(value: Any) -> tuple[int, Any]:
    """SQLite's ordering: NULL, then numbers (booleans as 0/1), then text; arrays and
    objects are their JSON text as SQLite writes it."""
    if value is None:
        return (0, 0)
    if isinstance(value, (bool, int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (2, _SQLITE.execute("SELECT json(?)", (json.dumps(value),)).fetchone()[0])


def model(records: list[Record], content_type: str | None = None,
          where: dict[str, Any] | None = None, order_by: list[str] | None = None,
          locale: str | None = None, limit: int | None = None, offset: int = 0) -> list[str]:
    found = [r for r in records if content_type is None or r.content_type == content_type]
    for key, condition in (where or {}).items():
        tests = condition.items() if isinstance(condition, dict) else [("eq", condition)]
        found = [r for r in found
                 if all(holds(key_value(r, key, locale), op, x) for op, x in tests)]
    found.sort(key=lambda r: r.id)
    for entry in reversed(order_by or []):
        key = entry.lstrip("-")
        found.sort(key=lambda r, key=key: order_key(key_value(r, key, locale)),
                   reverse=entry.startswith("-"))
    ids = [r.id for r in found]
    return ids[offset:] if limit is None else ids[offset:offset + limit]


# -- strategies ---------------------------------------------------------------------------------

FIELDS = ["rank", "tags", "title", "ref", "nothing"]
SYS_KEYS = ["sys.id", "sys.createdAt", "sys.updatedAt", "sys.contentType"]
SCALARS = st.one_of(
    st.sampled_from([v for v in RANKS + TITLES + ["a", "b", "c", "A", "[x]", "x", "[", 1]
                     if v is not None]),
    st.integers(-2, 12), st.floats(-3, 12, allow_nan=False).map(lambda f: round(f, 1)),
    st.sampled_from(['["a"]', '{"a":1}', "[1,2]", "plain"]))
NUMBERS_OR_TEXT = SCALARS.filter(lambda v: not isinstance(v, bool))
MATCHES = st.sampled_from(["a", "APF", "straße", "ss", "[", "{", "", "x", "B", "7"])


def _sys_operands(records: list[Record]) -> st.SearchStrategy[str]:
    values = sorted({v for r in records for v in (r.id, r.created_at, r.updated_at,
                                                   r.content_type) if v})
    return st.one_of(st.sampled_from(values), st.sampled_from(["", "i2", "item", "zzz"]))


def condition(key: str, records: list[Record]) -> st.SearchStrategy[Any]:
    sys = key.startswith("sys.")
    literal = _sys_operands(records) if sys else SCALARS
    ranged = _sys_operands(records) if sys else NUMBERS_OR_TEXT
    operators = {
        "eq": literal, "ne": literal, "in": st.lists(literal, max_size=3),
        "nin": st.lists(literal, max_size=3), "lt": ranged, "lte": ranged, "gt": ranged,
        "gte": ranged, "exists": st.booleans(), "match": MATCHES,
    }
    ops = st.dictionaries(st.sampled_from(sorted(operators)), st.none(), min_size=1,
                          max_size=2).flatmap(
        lambda chosen: st.fixed_dictionaries({op: operators[op] for op in chosen}))
    # Mostly operators: a bare literal is only "eq" (and hypothesis favours the first branch).
    return st.sampled_from(["ops", "ops", "ops", "literal"]).flatmap(
        lambda kind: ops if kind == "ops" else literal)


@st.composite
def queries(draw: st.DrawFn, records: list[Record]) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(FIELDS + SYS_KEYS), max_size=2, unique=True))
    where = {key: draw(condition(key, records)) for key in keys}
    order = draw(st.lists(st.tuples(st.sampled_from(FIELDS + SYS_KEYS), st.booleans()),
                          max_size=2))
    query: dict[str, Any] = {
        "content_type": draw(st.sampled_from([None, "item", "item", "other"])),
        "where": where or draw(st.sampled_from([None, {}])),
        "order_by": [("-" if desc else "") + key for key, desc in order] or None,
        "locale": draw(st.sampled_from(LOCALES)),
    }
    if draw(st.booleans()):
        query["limit"] = draw(st.integers(0, 12))
    query["offset"] = draw(st.sampled_from([0, 0, 1, 2, 5, 9, 40]))
    return query


SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_queries_agree_with_the_model(stores: dict[str, Any], data: st.DataObject) -> None:
    records = stores["records"]
    query = data.draw(queries(records))
    expected = model(records, **query)
    unpaged = {k: v for k, v in query.items() if k not in ("limit", "offset")}
    counted = {k: v for k, v in unpaged.items() if k != "order_by"}
    for name in ("plain", "hot"):
        cache = stores[name]
        assert [r.id for r in cache.entries(**query)] == expected, name
        assert cache.count(**counted) == len(model(records, **unpaged)), name
        streamed = cache.iter_entries(**query, batch=data.draw(st.integers(1, 7)))
        assert [r.id for r in streamed] == expected, name


OPERANDS: dict[str, list[Any]] = {
    "field": [3, 2.5, "7", "a", "[x]", "Straße", True, 0, "b"],
    "sys": ["i07", "i3", "item", "2", ""],
}


def _operands(key: str, op: str) -> list[Any]:
    pool = OPERANDS["sys" if key.startswith("sys.") else "field"]
    if op == "exists":
        return [True, False]
    if op == "match":
        return ["a", "STRASSE", "[", "e"]
    if op in ("in", "nin"):
        return [pool[:3], pool[3:], []]
    if op in ("lt", "lte", "gt", "gte"):
        return [v for v in pool if not isinstance(v, bool)]
    return pool


@pytest.mark.parametrize("key", FIELDS + SYS_KEYS)
def test_every_operator_agrees_with_the_model(stores: dict[str, Any], key: str) -> None:
    records = stores["records"]
    for op in ("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "exists", "match"):
        for operand in _operands(key, op):
            for locale in (None, "de-AT"):
                query = {"where": {key: {op: operand}}, "locale": locale}
                expected = model(records, "item", **query)
                for name in ("plain", "hot"):
                    got = [r.id for r in stores[name].entries("item", **query)]
                    assert got == expected, (name, query)


def test_the_model_sees_awkward_values(stores: dict[str, Any]) -> None:
    """The data exercises what the semantics must decide (else the property proves little)."""
    records = stores["records"]
    values = [key_value(r, f, loc) for r in records for f in FIELDS for loc in LOCALES]
    kinds = {type(v).__name__ for v in values}
    assert {"NoneType", "int", "float", "str", "bool", "list", "dict"} <= kinds
    raw = [r.raw["fields"].get("rank", {}) for r in records]
    assert any(None in per_locale.values() for per_locale in raw)  # a JSON null
    assert any(len(per_locale) > 1 for per_locale in raw)          # values differ by locale


def test_hot_fields_are_read_through_their_columns(stores: dict[str, Any]) -> None:
    hot, plain = stores["hot"], stores["plain"]
    with hot._store.reading():
        schema = hot._hot_schema()
        chains = chain_for(hot._store.raw_connection())
    declared = hot._declared_indexes
    assert declared is not None
    # one column per (field, locale chain), shared by the content types that declare it; an
    # index per (content type, field, chain)
    wanted = {(content_type, field, chain) for content_type, fields in declared.items()
              for field in fields for chain in field_chains(chains, content_type, field)}
    assert len(schema.indexes) == len(wanted) > 5
    assert len(schema.columns) == len({(field, chain) for _, field, chain in wanted})
    with plain._store.reading():
        assert not plain._hot_schema().columns


# -- paging -------------------------------------------------------------------------------------


def test_pages_tile_the_whole_order(stores: dict[str, Any]) -> None:
    """Pages of any size, in an order full of ties and missing values, are disjoint and
    together the whole list: ties are broken by sys.id."""
    for name in ("plain", "hot"):
        cache = stores[name]
        for order_by in (["rank"], ["-rank"], ["tags", "-title"], ["-sys.contentType"]):
            whole = [r.id for r in cache.entries(order_by=order_by)]
            assert len(whole) == len(set(whole)) == 60
            for size in (1, 7, 25):
                paged = [r.id for start in range(0, 60, size)
                         for r in cache.entries(order_by=order_by, limit=size, offset=start)]
                assert paged == whole, (name, order_by, size)


def test_missing_values_sort_first_ascending_and_last_descending(
        stores: dict[str, Any]) -> None:
    cache, records = stores["plain"], stores["records"]
    missing = sorted(r.id for r in records if r.field("tags") is None)
    assert missing
    ascending = [r.id for r in cache.entries(order_by=["tags"])]
    descending = [r.id for r in cache.entries(order_by=["-tags"])]
    assert ascending[:len(missing)] == missing
    assert descending[-len(missing):] == missing


def test_deep_pages_start_from_the_directory_and_follow_new_content(
        stores: dict[str, Any]) -> None:
    """A plain listing far down starts from the nearest block of the id directory (strides
    of 4 here); the directory is rebuilt once anything commits."""
    cache, space = stores["hot"], stores["space"]
    whole = [r.id for r in cache.entries("item")]
    for offset in range(0, 55):
        assert [r.id for r in cache.entries("item", limit=3, offset=offset)] == \
            whole[offset:offset + 3], offset
    assert [r.id for r in cache.entries(offset=57)] == [f"i{n}" for n in (57, 58, 59)]
    space.publish_entry("h00", "item", {"rank": {"en-US": 1}})  # sorts first: shifts all
    space.publish_entry("i49x", "item", {"rank": {"en-US": 1}})
    cache.sync()
    try:
        whole = [r.id for r in cache.entries("item")]
        assert whole[0] == "h00" and "i49x" in whole
        for offset in (6, 10, 33, 50, 51, 52):
            assert [r.id for r in cache.entries("item", limit=3, offset=offset)] == \
                whole[offset:offset + 3], offset
    finally:
        space.delete_entry("h00")
        space.delete_entry("i49x")
        cache.sync()


def test_iter_entries_reads_one_batch_per_transaction(stores: dict[str, Any]) -> None:
    cache = stores["hot"]
    statements: list[str] = []
    conn = cache._store.raw_connection()
    conn.set_trace_callback(statements.append)
    try:
        streamed = [r.id for r in cache.iter_entries("item", order_by=["-rank", "title"],
                                                     batch=8)]
    finally:
        conn.set_trace_callback(None)
    assert streamed == [r.id for r in cache.entries("item", order_by=["-rank", "title"])]
    selects = [s for s in statements if s.startswith("SELECT e.id, e.content_type")]
    begins = [s for s in statements if s == "BEGIN"]
    assert len(selects) == 50 // 8 + 1  # 7 batches, the last one short
    assert len(begins) >= len(selects)


def test_malformed_queries_name_the_key(stores: dict[str, Any]) -> None:
    cache = stores["plain"]
    with pytest.raises(QueryError, match="'rank'"):
        cache.entries(where={"rank": {"between": [1, 2]}})
    with pytest.raises(QueryError, match=r"'sys\.revision'"):
        list(cache.iter_entries(order_by=["sys.revision"]))
    with pytest.raises(QueryError, match="locale 'fr-FR'"):
        cache.count(locale="fr-FR")
