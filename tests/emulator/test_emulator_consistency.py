"""Paging stays consistent while the space is mutated between page requests.

The library relies on this: an initial sync followed by deltas must reproduce the published
content exactly, however edits interleave with the pages.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcache.emulator import Emulator, Locale, Space

from .helpers import TOKEN, Cda, apply, article, asset, expected_store, make_space

Store = dict[tuple[str, str], dict[str, Any]]


def test_mutations_between_pages_are_neither_lost_nor_duplicated() -> None:
    space = make_space(articles=20, authors=3, assets=4)
    snapshots: list[Store] = []

    def mutate(path: str, query: dict[str, list[str]]) -> None:
        call = len(snapshots)
        if call == 0:
            space.publish_entry("article-000", "article", article("before the sync starts"))
        elif call == 1:
            space.publish_entry("article-000", "article", article("already delivered"))
            space.publish_entry("article-019", "article", article("not delivered yet"))
            space.publish_entry("new-1", "article", article("created mid-sync"))
        elif call == 2:
            space.delete_entry("article-015")  # still due in this sync, as of its start
            space.unpublish_entry("article-001")  # already delivered
            space.delete_asset("asset-3")
        elif call == 3:
            space.delete_entry("article-018")
            space.publish_entry("article-018", "article", article("reborn"))
            space.publish_asset("asset-9", asset("new asset"))
        elif call == 6:
            space.publish_entry("article-001", "article", article("republished"))
        snapshots.append(expected_store(space))

    with Emulator(space, access_token=TOKEN) as emu:
        emu.faults.on_request = mutate
        cda = Cda(emu)
        first = cda.initial(limit=3)
        keys = first.item_keys()
        assert len(keys) == len(set(keys)), "an item was delivered twice"
        store: Store = {}
        apply(store, first.items)
        assert store == snapshots[0], "the initial sync must be the space as of its first page"
        delta = cda.follow(first.next_sync_url)
        keys = delta.item_keys()
        assert len(keys) == len(set(keys))
        emu.faults.on_request = None
        apply(store, delta.items)
        settle = cda.follow(delta.next_sync_url)
        apply(store, settle.items)
        assert store == expected_store(space)
        assert ("Entry", "article-018") in store
        assert store[("Entry", "article-018")]["sys"]["revision"] == 1
        cda.close()


OPS = st.tuples(
    st.sampled_from(["publish", "unpublish", "delete"]),
    st.sampled_from(["Entry", "Asset"]),
    st.integers(min_value=0, max_value=9),
)


def run_op(space: Space, op: tuple[str, str, int], serial: int) -> None:
    action, kind, number = op
    item_id = f"{kind.lower()}-{number}"
    try:
        if action == "publish" and kind == "Entry":
            space.publish_entry(item_id, "article", article(f"{item_id} #{serial}"))
        elif action == "publish":
            space.publish_asset(item_id, asset(f"{item_id} #{serial}"))
        elif action == "unpublish" and kind == "Entry":
            space.unpublish_entry(item_id)
        elif action == "unpublish":
            space.unpublish_asset(item_id)
        elif kind == "Entry":
            space.delete_entry(item_id)
        else:
            space.delete_asset(item_id)
    except KeyError:
        pass  # the id does not exist right now; an editor could not do that either


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed_ops=st.lists(OPS, min_size=0, max_size=25),
    rounds=st.lists(st.lists(OPS, max_size=4), max_size=12),
    limit=st.integers(min_value=1, max_value=4),
    filtered=st.sampled_from([None, "Entry", "Asset"]),
)
def test_initial_plus_deltas_reproduce_the_space(
    seed_ops: list[tuple[str, str, int]],
    rounds: list[list[tuple[str, str, int]]],
    limit: int,
    filtered: str | None,
) -> None:
    space = Space("demo", "master", [Locale("en-US", default=True), Locale("de-DE")])
    space.add_content_type("article", name="Article", fields=[])
    for serial, op in enumerate(seed_ops):
        run_op(space, op, serial)
    pending = list(rounds)

    def mutate(path: str, query: dict[str, list[str]]) -> None:
        if pending:
            for op in pending.pop(0):
                run_op(space, op, 1000 + len(pending))

    with Emulator(space, access_token=TOKEN) as emu:
        emu.faults.on_request = mutate
        cda = Cda(emu)
        params: dict[str, Any] = {"limit": limit}
        if filtered is not None:
            params["type"] = filtered
        result = cda.initial(**params)
        store: Store = {}
        for _ in range(len(rounds) + 2):
            keys = result.item_keys()
            assert len(keys) == len(set(keys))
            apply(store, result.items)
            result = cda.follow(result.next_sync_url)
        emu.faults.on_request = None
        apply(store, result.items)
        apply(store, cda.follow(result.next_sync_url).items)
        cda.close()
    expected = expected_store(space)
    if filtered is None:
        assert store == expected
    else:
        # type=Entry / type=Asset syncs carry no deletions: everything published must be there
        # in its latest state, and anything else is a resource withdrawn meanwhile.
        expected = {key: value for key, value in expected.items() if key[0] == filtered}
        assert {key: store.get(key) for key in expected} == expected
        assert all(key[0] == filtered for key in store)
