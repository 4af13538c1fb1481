"""Sync paging stays exact while the project changes between requests.

The library relies on this: init, a first load from Delivery, then following the Sync API (v1
data, or v2 metadata plus Delivery fetches) must reproduce ``project.published()`` exactly,
however the edits interleave with the pages.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcache.emulator.project import Project

from .test_kontent_support import (
    ENV,
    Kontent,
    Store,
    apply_v1,
    apply_v2,
    make_project,
    publish_article,
    serve,
)


def _sync(client: Kontent, store: Store, token: str, v2: bool) -> tuple[list[Any], str]:
    pages, token = client.follow(token, v2)
    if v2:
        apply_v2(store, client, pages)
    else:
        apply_v1(store, pages)
    return pages, token


@pytest.mark.parametrize("v2", [False, True])
def test_mutations_between_pages_are_neither_lost_nor_duplicated(v2: bool) -> None:
    project = make_project(articles=12)
    calls: list[str] = []

    def mutate(path: str, query: dict[str, list[str]]) -> None:
        calls.append(path)
        if not path.endswith("/sync"):
            return
        count = sum(1 for seen in calls if seen.endswith("/sync"))
        if count == 2:  # mid-round: after the first page was cut
            publish_article(project, 0, "default", "already delivered, edited again")
            publish_article(project, 11, "default", "not delivered yet, edited")
            publish_article(project, 30, "es-ES", "created mid-round")
        elif count == 3:
            project.delete_item("art-09")
            project.delete_variant("art-00", "es-ES")
            project.add_type("page", elements={"title": "text"})

    with serve(project, page_size=3) as emu:
        client = Kontent(emu, page_size=3)
        token = client.init(v2=v2)
        store = client.load(project)
        for number in range(12):
            publish_article(project, number, "default", f"round one {number}")
        emu.faults.on_request = mutate
        pages, token = _sync(client, store, token, v2)
        for page in pages:
            keys = [
                (e["data"]["system"]["id"], e["data"]["system"]["language"]) for e in page["items"]
            ]
            assert len(keys) == len(set(keys)), "a change was delivered twice in one page"
        emu.faults.on_request = None
        _sync(client, store, token, v2)
    assert store == project.published()
    assert ("art-30", "es-ES") in store and ("art-09", "default") not in store


ITEMS = [(f"item-{number}", f"item_{number}") for number in range(6)]
LANGUAGES = ["default", "es-ES"]
OPS = st.tuples(
    st.sampled_from(["upsert", "upsert", "delete_variant", "delete_item"]),
    st.sampled_from(ITEMS),
    st.sampled_from(LANGUAGES),
)


def run_op(project: Project, op: tuple[str, tuple[str, str], str], serial: int) -> None:
    action, (item_id, codename), language = op
    try:
        if action == "upsert":
            project.upsert_variant(item_id, codename, "article", language, {"title": f"#{serial}"})
        elif action == "delete_variant":
            project.delete_variant(item_id, language)
        else:
            project.delete_item(item_id)
    except KeyError:
        pass  # nothing to delete right now; an editor could not do it either


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed_ops=st.lists(OPS, max_size=12),
    rounds=st.lists(st.lists(OPS, max_size=4), max_size=8),
    page_size=st.integers(min_value=1, max_value=3),
    v2=st.booleans(),
)
def test_init_load_and_sync_reproduce_the_project(
    seed_ops: list[tuple[str, tuple[str, str], str]],
    rounds: list[list[tuple[str, tuple[str, str], str]]],
    page_size: int,
    v2: bool,
) -> None:
    project = Project(environment_id=ENV, languages=LANGUAGES)
    project.add_type("article", elements={"title": "text"})
    for serial, op in enumerate(seed_ops):
        run_op(project, op, serial)
    pending = list(rounds)

    def mutate(path: str, query: dict[str, list[str]]) -> None:
        if pending:  # edits land before any request: init, feed pages, sync pages, fetches
            for op in pending.pop(0):
                run_op(project, op, 1000 + len(pending))

    with serve(project, page_size=page_size) as emu:
        emu.faults.on_request = mutate
        client = Kontent(emu, page_size=page_size)
        token = client.init(v2=v2)
        store = client.load(project)
        for _ in range(len(rounds) + 1):
            _, token = _sync(client, store, token, v2)
        emu.faults.on_request = None
        _sync(client, store, token, v2)
        client.close()
    assert store == project.published()
