"""Property: any edit history, with syncs (and failed syncs) at random points, converges.

Each example builds a fresh emulated space and store, then runs a random program of edits —
publish, edit, unpublish, delete, re-create an id, assets too — interleaved with syncs, some of
which the server breaks off after a random number of pages. A final sync must leave the store
equal to what the server publishes, item for item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import article, assert_converged, asset_fields, make_cache, make_space, run_program

from localcache import HttpPolicy
from localcache.emulator import Emulator

IDS = [f"e{i}" for i in range(12)]
ASSET_IDS = [f"a{i}" for i in range(4)]

operations = st.one_of(
    st.tuples(st.just("publish"), st.sampled_from(IDS), st.text(max_size=8)),
    st.tuples(st.just("unpublish"), st.sampled_from(IDS)),
    st.tuples(st.just("delete"), st.sampled_from(IDS)),
    st.tuples(st.just("publish_asset"), st.sampled_from(ASSET_IDS)),
    st.tuples(st.just("delete_asset"), st.sampled_from(ASSET_IDS)),
    st.tuples(st.just("sync")),
    st.tuples(st.just("broken_sync"), st.integers(min_value=1, max_value=4)),
)


def _edit(space: Any, op: tuple[Any, ...], published: set[str]) -> None:
    kind = op[0]
    if kind == "publish":
        links = sorted(published - {op[1]})[:2]
        space.publish_entry(op[1], "article", article(op[2] or "t", de=op[2][::-1] or None,
                                                      related=links))
        published.add(op[1])
    elif kind in ("unpublish", "delete") and op[1] in published:
        (space.unpublish_entry if kind == "unpublish" else space.delete_entry)(op[1])
        published.discard(op[1])
    elif kind == "publish_asset":
        space.publish_asset(op[1], asset_fields(op[1]))
    elif kind == "delete_asset" and op[1] in space.published_assets():
        space.delete_asset(op[1])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(program=st.lists(operations, min_size=1, max_size=30))
def test_random_histories_converge(tmp_path_factory: Any, program: list[tuple[Any, ...]]) -> None:
    space = make_space()
    path: Path = tmp_path_factory.mktemp("conv") / "store.sqlite3"
    published: set[str] = set()
    with Emulator(space, access_token="test-delivery-token") as emulator, \
            make_cache(emulator, path, limit=3,
                       http=HttpPolicy(max_attempts=2, backoff_base=0.001)) as cache:
        run_program(emulator, cache, program, lambda op: _edit(space, op, published),
                    counts=lambda path: path.endswith("/sync"))
        assert_converged(cache, space)
