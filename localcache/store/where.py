"""Typed ``where`` and ``order_by`` arguments, compiled to SQL over the stored JSON (JSON1).

A caller's string never becomes SQL text: field ids, locale codes and operands travel as ``?``
parameters (a field's JSON path is built here, in Python, and bound). The only SQL text is this
module's own; a declared hot field is read through its generated column, whose name this module
derives from the JSON path (``lc_hot_`` and a hash, see :func:`hot_column_name`).

What a key means (docs/querying.md has the user's version):

- ``sys.id``, ``sys.createdAt``, ``sys.updatedAt``, ``sys.contentType`` are the record's columns,
  compared as text (their operands must be strings). Any other ``sys.`` key is refused.
- Any other key is a field id. Its value is exactly what ``record.field(id, locale)`` returns:
  the first locale of the query's chain that holds the field, for Kontent.ai that element's
  ``value``. JSON null, or no locale holding it, is a *missing* value (SQL NULL). A field its
  content type does not localize reads the default locale's chain first, whatever the query's
  locale (``LocaleChain.unlocalized_chain``).
- ``eq`` (a bare literal), ``in``: true when the value equals the operand, or, when the value is
  an array, when any element does (the Content Delivery API's rule for array fields).
  ``ne``/``nin`` are their negation, so they also match missing values.
- ``lt``/``lte``/``gt``/``gte``: a number compares with numbers, a string with strings (binary,
  code point order); any other value (missing, the other kind, arrays, objects) never matches.
  JSON booleans are SQLite's 1 and 0, numbers for every operator.
- ``exists``: True when the value is not missing; False when it is.
- ``match``: case-insensitive (Unicode casefold) substring of a text value, or of any text
  element of an array.
- ``order_by`` sorts by SQLite's ordering: missing first ascending, last descending; numbers
  before text; arrays and objects as their JSON text. Ties are broken by ``sys.id`` ascending.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import QueryError

__all__ = [
    "CASEFOLD_FUNCTION",
    "HOT_PREFIX",
    "OPERATORS",
    "SYS_COLUMNS",
    "Condition",
    "FieldReader",
    "KeyValue",
    "OrderKey",
    "Param",
    "Sql",
    "after_clause",
    "chain_column_name",
    "chain_value_sql",
    "check_field_id",
    "compile_order",
    "compile_where",
    "compose",
    "field_value",
    "hot_column_name",
    "hot_column_sql",
    "join_sql",
    "json_path",
    "order_clause",
    "sql_literal",
]

SYS_COLUMNS: dict[str, str] = {
    "sys.id": "id",
    "sys.createdAt": "created_at",
    "sys.updatedAt": "updated_at",
    "sys.contentType": "content_type",
}
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "exists", "match")
_RANGE = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
HOT_PREFIX = "lc_hot_"
CASEFOLD_FUNCTION = "localcache_casefold"
_INT_BOUND = 1 << 63


@dataclass(frozen=True, slots=True)
class Sql:
    """A fragment of SQL text (this module's own) and the parameters its ``?`` take, in order."""

    text: str
    params: tuple[Any, ...] = ()


class Param(NamedTuple):
    """A value bound to one ``?``."""

    value: Any


def compose(*pieces: str | Sql | Param) -> Sql:
    """Concatenate constant text, fragments and parameters, keeping parameters in text order."""
    text: list[str] = []
    params: list[Any] = []
    for piece in pieces:
        if isinstance(piece, Sql):
            text.append(piece.text)
            params.extend(piece.params)
        elif isinstance(piece, Param):
            text.append("?")
            params.append(piece.value)
        else:
            text.append(piece)
    return Sql("".join(text), tuple(params))


def join_sql(parts: Sequence[Sql], separator: str) -> Sql:
    pieces: list[str | Sql] = []
    for number, part in enumerate(parts):
        if number:
            pieces.append(separator)
        pieces.append(part)
    return compose(*pieces)


# -- where a value is ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyValue:
    """How one ``where``/``order_by`` key is read: its value (NULL when missing); for a
    field, the JSON path of that value inside ``raw`` (to walk an array's elements); the
    column an index may hold it in (a hot field's, or ``id``); and whether the value may be an
    array (False when the hot field's index shows none is, for the query's content type)."""

    key: str
    value: Sql
    located: Sql | None = None
    column: str | None = None
    arrays: bool = True


def json_path(field: str, locale: str, provider: str) -> str:
    """The JSON path of a field's value in one locale (a Kontent.ai element's ``value``)."""
    path = f'$.fields."{field}"."{locale}"'
    return path + '."value"' if provider == "kontent" else path


def hot_column_name(path: str) -> str:
    """The generated column that holds the value at ``path``, when a hot field declares it."""
    return HOT_PREFIX + hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]


def sql_literal(text: str) -> str:
    """``text`` as an SQL string literal, for DDL (which takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def hot_column_sql(path: str) -> str:
    """The generated column's expression: the same value :func:`field_value` reads for a
    one-locale chain, with the path as an SQL literal (DDL takes no parameters)."""
    return f"json_extract(raw, {sql_literal(path)})"


def chain_value_sql(field: str, chain: Sequence[str], provider: str) -> str:
    """The expression of the generated column holding ``field``'s value for a locale chain:
    what :func:`field_value` reads for that chain, with literals (DDL takes no parameters).

    The value of the first locale present, written so that the usual case costs one parse of
    the entry's JSON (SQLite 3.40 parses it again for each JSON function called, and an index
    on the column evaluates it for the old row and the new on every update): a locale's
    value when it is not null, and only when it is, whether the locale is present at all (a
    JSON null, or a Kontent.ai element without a value, ends the chain)."""
    *first, last = chain
    expression = hot_column_sql(json_path(field, last, provider))
    for locale in reversed(first):
        present = sql_literal(json_path(field, locale, ""))
        expression = (f"coalesce({hot_column_sql(json_path(field, locale, provider))}, "
                      f"CASE WHEN json_type(raw, {present}) IS NOT NULL THEN NULL "
                      f"ELSE {expression} END)")
    return expression


def chain_column_name(field: str, chain: Sequence[str], provider: str) -> str:
    """The generated column of ``field`` for a locale chain, when a hot field declares it:
    for one locale, named after its path (:func:`hot_column_name`); for a longer chain,
    after its expression."""
    if len(chain) == 1:
        return hot_column_name(json_path(field, chain[0], provider))
    return hot_column_name(chain_value_sql(field, chain, provider))


def field_value(field: str, chain: Sequence[str], provider: str,
                hot_columns: Collection[str] = (),
                scalar_only: Callable[[str], bool] | None = None) -> KeyValue:
    """The value of ``field`` for a locale chain: the one place that says where it is.

    One locale: its path (or the hot field's generated column, which holds the same value and
    is indexed; ``scalar_only(column)`` tells whether it is known to hold no array). Several:
    the first locale whose key is present, as ``record.field`` does.
    """
    if not chain:
        return KeyValue(field, Sql("NULL"), Sql("NULL"))
    if len(chain) == 1:
        located = compose(Param(json_path(field, chain[0], provider)))
    else:
        whens: list[str | Sql | Param] = ["CASE"]
        for locale in chain:
            # Presence is the locale's key (for Kontent.ai: its element); the value is inside.
            whens += [" WHEN json_type(e.raw, ", Param(json_path(field, locale, "")),
                      ") IS NOT NULL THEN ", Param(json_path(field, locale, provider))]
        located = compose(*whens, " END")
    column = chain_column_name(field, chain, provider)
    if column not in hot_columns:
        return KeyValue(field, compose("json_extract(e.raw, ", located, ")"), located)
    # the same value, generated for this chain and indexed
    arrays = scalar_only is None or not scalar_only(column)
    return KeyValue(field, Sql(f"e.{column}"), located, column, arrays)


def check_field_id(field: object, what: str) -> str:
    """A field id SQLite's JSON paths can address, or QueryError naming it."""
    if not isinstance(field, str) or not field:
        raise QueryError(f"{what} {field!r} is not a field id or sys key")
    if any(c in '"\\' or ord(c) < 32 for c in field):
        raise QueryError(f"{what} {field!r}: a field id cannot hold quotes, backslashes or "
                         "control characters")
    if field.startswith("fields."):
        raise QueryError(f"{what} {field!r}: name the field alone, as {field[7:]!r}")
    return field


def _per_type(types: Collection[str], inside: KeyValue, outside: KeyValue) -> KeyValue:
    """``inside`` for entries of one of ``types``, else ``outside`` (no index serves it)."""
    assert inside.located is not None and outside.located is not None
    of_type = compose("e.content_type IN (SELECT value FROM json_each(",
                      Param(json.dumps(sorted(types))), "))")

    def either(one: Sql, other: Sql) -> Sql:
        return compose("(CASE WHEN ", of_type, " THEN ", one, " ELSE ", other, " END)")

    return KeyValue(inside.key, either(inside.value, outside.value),
                    either(inside.located, outside.located))


@dataclass(frozen=True, slots=True)
class FieldReader:
    """How one query reads keys: the store's provider, the query's locale chain, the hot
    fields' generated columns that exist in the store; and the fields some content type of
    the query does not localize (field id → those types), read in ``unlocalized_chain``
    (the default locale's chain first) in entries of those types."""

    provider: str
    chain: tuple[str, ...]
    hot_columns: frozenset[str] = frozenset()
    scalar_only: Callable[[str], bool] | None = None
    unlocalized: Mapping[str, frozenset[str]] = field(default_factory=dict)
    unlocalized_chain: tuple[str, ...] = ()
    content_type: str | None = None

    def value(self, key: object, what: str) -> KeyValue:
        if isinstance(key, str) and key.startswith("sys."):
            column = SYS_COLUMNS.get(key)
            if column is None:
                raise QueryError(f"{what} {key!r} is not a sys key; use one of "
                                 f"{', '.join(SYS_COLUMNS)}")
            return KeyValue(key, Sql(f"e.{column}"), column="id" if column == "id" else None,
                            arrays=False)
        field_id = check_field_id(key, what)
        types = self.unlocalized.get(field_id)
        plain = self.chain
        if types and self.unlocalized_chain != plain:
            unlocalized = field_value(field_id, self.unlocalized_chain, self.provider,
                                      self.hot_columns, self.scalar_only)
            if self.content_type is not None and types == {self.content_type}:
                return unlocalized
            return _per_type(types, unlocalized, field_value(field_id, plain, self.provider))
        return field_value(field_id, plain, self.provider, self.hot_columns, self.scalar_only)


# -- where --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a query, and the indexed column it can be looked up by (a hot
    field's, or ``id``), when its SQL lets an index do that."""

    sql: Sql
    column: str | None = None


def compile_where(where: object, reader: FieldReader) -> list[Condition]:
    """One condition per key and operator of ``where``, all to hold (AND)."""
    if where is None:
        return []
    if not isinstance(where, Mapping):
        raise QueryError(f"where must be a dict of {{key: value or {{operator: operand}}}}, "
                         f"not {type(where).__name__}")
    conditions: list[Condition] = []
    for key, condition in where.items():
        kv = reader.value(key, "where key")
        if isinstance(condition, Mapping):
            if not condition:
                raise QueryError(f"where[{key!r}] names no operator; use one of "
                                 f"{', '.join(OPERATORS)}")
            conditions.extend(_predicate(kv, op, operand) for op, operand in condition.items())
        else:
            conditions.append(_predicate(kv, "eq", condition))
    return conditions


def _predicate(kv: KeyValue, op: object, operand: object) -> Condition:
    sql = _predicate_sql(kv, op, operand)
    # Ranges, and equality on a value that cannot be an array, are index lookups.
    lookup = op in _RANGE or (op in ("eq", "in") and not kv.arrays)
    return Condition(sql, kv.column if lookup else None)


def _predicate_sql(kv: KeyValue, op: object, operand: object) -> Sql:
    where = f"where[{kv.key!r}]"
    if op not in OPERATORS:
        raise QueryError(f"{where}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    if op == "exists":
        if not isinstance(operand, bool):
            raise QueryError(f"{where}: 'exists' takes True or False, not {operand!r}")
        return compose(kv.value, " IS NOT NULL" if operand else " IS NULL")
    text_only = kv.located is None  # sys keys are text columns
    if op in ("in", "nin"):
        if not isinstance(operand, (list, tuple, set, frozenset)):
            raise QueryError(f"{where}: {op!r} takes a list, not {type(operand).__name__}")
        values = [_literal(where, op, item, text_only) for item in operand]
        listed = compose(" IN (SELECT value FROM json_each(", Param(json.dumps(values)), "))")
        found = _member(kv, listed, values)
        return found if op == "in" else compose("NOT IFNULL(", found, ", 0)")
    if op == "match":
        if not isinstance(operand, str):
            raise QueryError(f"{where}: 'match' takes a string, not {operand!r}")
        return _match(kv, operand.casefold())
    assert isinstance(op, str)
    value = _literal(where, op, operand, text_only)
    if op in _RANGE:
        return _range(kv, _RANGE[op], value, where)
    found = _member(kv, compose(" = ", Param(value)), [value])
    return found if op == "eq" else compose("NOT IFNULL(", found, ", 0)")


def _literal(where: str, op: str, value: object, text_only: bool) -> Any:
    if text_only and not isinstance(value, str):
        raise QueryError(f"{where}: {op!r} on a sys key takes strings, not {value!r}")
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -_INT_BOUND <= value < _INT_BOUND:
            raise QueryError(f"{where}: {op!r} operand {value} is beyond 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryError(f"{where}: {op!r} operand {value} is not a finite number")
        return value
    if value is None:
        raise QueryError(f"{where}: None is not a value to compare with; use "
                         "{'exists': False} for a missing value")
    if isinstance(value, (list, tuple, set, frozenset)):
        raise QueryError(f"{where}: {op!r} takes one value, not a list; use 'in' for any of "
                         "several values")
    raise QueryError(f"{where}: {op!r} takes a string, number or boolean, not "
                     f"{type(value).__name__}")


def _type(kv: KeyValue) -> Sql:
    assert kv.located is not None
    return compose("json_type(e.raw, ", kv.located, ")")


def _composite(kv: KeyValue) -> Sql:
    """The text value is an array or object (JSON text), not a string. The cheap first test
    spares a second JSON walk for nearly every string."""
    return compose("(substr(", kv.value, ", 1, 1) IN ('[', '{') AND ", _type(kv),
                   " IN ('array', 'object'))")


def _any_element(kv: KeyValue, test: Sql) -> Sql:
    """The value is an array with a scalar element passing ``test`` (on ``j.value``). Its
    JSON text starts with '[' (the range lets an index narrow it down)."""
    assert kv.located is not None
    return compose("(", kv.value, " >= '[' AND ", kv.value, " < '\\' AND ", _type(kv),
                   " = 'array' AND EXISTS (SELECT 1 FROM json_each(e.raw, ", kv.located,
                   ") AS j WHERE j.type NOT IN ('array', 'object') AND ", test, "))")


def _member(kv: KeyValue, test: Sql, operands: list[Any]) -> Sql:
    """The value passes ``test`` (`` = ?`` or `` IN (...)``), or any element of it does."""
    scalar = compose(kv.value, test)
    if kv.located is None:
        return scalar
    if any(isinstance(v, str) and v[:1] in ("[", "{") for v in operands):
        # Only then could an array's (or object's) JSON text equal a string operand.
        scalar = compose("(", scalar, " AND ", _type(kv), " NOT IN ('array', 'object'))")
    if not kv.arrays:
        return scalar
    return compose("(", scalar, " OR ", _any_element(kv, compose("j.value", test)), ")")


def _range(kv: KeyValue, op: str, value: Any, where: str) -> Sql:
    """Same kind only. SQLite sorts every number before every string (and JSON values are
    never blobs), so a bound at '' keeps the other kind out and stays an index range."""
    if isinstance(value, bool):
        raise QueryError(f"{where}: range operators take a number or a string, not {value!r}")
    compare = compose(kv.value, f" {op} ", Param(value))
    if kv.located is None:
        return compare
    if isinstance(value, str):
        numbers_out = compose(" AND ", kv.value, " >= ''") if op in ("<", "<=") else Sql("")
        return compose("(", compare, numbers_out, " AND NOT ", _composite(kv), ")")
    if op in (">", ">="):
        return compose("(", compare, " AND ", kv.value, " < '')")
    return compare


def _match(kv: KeyValue, folded: str) -> Sql:
    def contains(text: Sql) -> Sql:
        return compose(f"instr({CASEFOLD_FUNCTION}(", text, "), ", Param(folded), ") > 0")

    if kv.located is None:
        return contains(kv.value)
    scalar = compose("(typeof(", kv.value, ") = 'text' AND NOT ", _composite(kv), " AND ",
                     contains(kv.value), ")")
    if not kv.arrays:
        return scalar
    element = compose("j.type = 'text' AND ", contains(Sql("j.value")))
    return compose("(", scalar, " OR ", _any_element(kv, element), ")")


# -- order_by and keyset paging -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderKey:
    key: str
    value: Sql
    descending: bool = False
    column: str | None = None  # the hot column (or id) an index orders by


_BY_ID = OrderKey("sys.id", Sql("e.id"), column="id")


def compile_order(order_by: object, reader: FieldReader) -> list[OrderKey]:
    """The full order: the caller's keys, then ``sys.id`` ascending (unless already named),
    so every order is total and paging is stable."""
    if order_by is None:
        entries: Sequence[object] = []
    elif isinstance(order_by, str):
        entries = [order_by]
    elif isinstance(order_by, (list, tuple)):
        entries = order_by
    else:
        raise QueryError(f"order_by takes a list of keys such as ['-rank', 'sys.id'], "
                         f"not {type(order_by).__name__}")
    keys: list[OrderKey] = []
    for entry in entries:
        if not isinstance(entry, str) or entry in ("", "-"):
            raise QueryError(f"order_by entry {entry!r} is not a field id or sys key "
                             "(with an optional '-' for descending)")
        descending = entry.startswith("-")
        key = entry[1:] if descending else entry
        kv = reader.value(key, "order_by key")
        keys.append(OrderKey(key, kv.value, descending, kv.column))
    if not any(k.key == "sys.id" for k in keys):
        keys.append(_BY_ID)
    return keys


def order_clause(keys: Sequence[OrderKey]) -> Sql:
    columns = [compose(k.value, " DESC" if k.descending else "") for k in keys]
    return compose("ORDER BY ", join_sql(columns, ", "))


def after_clause(keys: Sequence[OrderKey], last: Sequence[Any]) -> Sql:
    """Rows after the row whose order-key values were ``last``, in the order of ``keys``
    (keyset paging, with SQLite's NULL placement: first ascending, last descending)."""
    disjuncts: list[Sql] = []
    for number, (key, value) in enumerate(zip(keys, last, strict=True)):
        if key.descending:
            if value is None:
                continue  # nothing sorts after a missing value in descending order
            beyond = compose("(", key.value, " < ", Param(value), " OR ", key.value, " IS NULL)")
        else:
            beyond = (compose(key.value, " IS NOT NULL") if value is None
                      else compose(key.value, " > ", Param(value)))
        same = [compose(k.value, " IS ", Param(v))
                for k, v in zip(keys[:number], last[:number], strict=True)]
        disjuncts.append(compose("(", join_sql([*same, beyond], " AND "), ")"))
    return compose("(", join_sql(disjuncts, " OR "), ")") if disjuncts else Sql("0")
