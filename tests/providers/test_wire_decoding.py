"""loads_yielding: a page decoded member by member reads exactly as json.loads reads it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcache.providers.wire import loads_yielding

scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=20)
spaces = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


@settings(max_examples=300, deadline=None)
@given(document=st.dictionaries(st.text(max_size=6), values, max_size=5), indent=st.one_of(
    st.none(), st.integers(0, 3)), pad=spaces)
def test_reads_what_json_loads_reads(document: dict[str, Any], indent: int | None,
                                     pad: str) -> None:
    text = pad + json.dumps(document, indent=indent) + pad
    assert loads_yielding(text) == json.loads(text)


@pytest.mark.parametrize("text", [
    '{"a": 1, "a": 2}', '{}', ' { } ', '{"items": []}', '{"items": [ ]}',
    '{"items": [1 , {"b": [2]} ,3], "next": "x"}', '[1, 2]', '"text"', '{"x": "\\u00e9"}',
])
def test_edge_cases_agree(text: str) -> None:
    assert loads_yielding(text) == json.loads(text)


@pytest.mark.parametrize("text", [
    '{"a": 1,}', '{"a" 1}', '{a: 1}', '{"items": [1, 2,]}', '{"items": [1 2]}',
    '{"items": [1, 2}', '{"a": 1} x', '{"a": 1', '{"items": [', '', '{"a": NaN}',
    '{"a": [Infinity]}', '{"a": 1e400}', '{"a": "\x01"}',
])
def test_invalid_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)),
                   parse_float=lambda f: float(f) if math.isfinite(float(f))
                   else (_ for _ in ()).throw(ValueError(f)))
    with pytest.raises(ValueError):
        loads_yielding(text)
