"""Contentstack paging stays consistent while the stack is mutated between page requests.

An initial sync followed by deltas must reproduce the published content exactly, however edits
interleave with the pages, and no page may repeat or skip an item.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcache.emulator import Emulator
from localcache.emulator.stack import Stack

from .test_contentstack_support import (
    API_KEY,
    ENVIRONMENT,
    LOCALES,
    TOKEN,
    CsClient,
    Mirror,
    Published,
    make_stack,
    publish_article,
)


def test_mutations_between_pages_are_neither_lost_nor_duplicated() -> None:
    stack = make_stack(articles=10, authors=2, assets=3)
    snapshots: list[Published] = []

    def mutate(path: str, query: dict[str, list[str]]) -> None:
        call = len(snapshots)
        if call == 0:
            publish_article(stack, 0, "en-us", " before the sync starts")
        elif call == 1:
            publish_article(stack, 0, "en-us", " already delivered")
            publish_article(stack, 9, "en-us", " not delivered yet")
            stack.publish_entry("new-1", "article", "fr-fr", {"title": "created mid-sync"})
        elif call == 2:
            stack.delete_entry("article-8", "fr-fr")  # still due in this sync, as of its start
            stack.unpublish_entry("article-0", "fr-fr")  # already delivered
            stack.delete_asset("asset-2", "en-us")
        elif call == 3:
            stack.delete_content_type("author")
            stack.publish_entry("author-1", "author", "en-us", {"title": "type re-created"})
            stack.publish_asset("asset-9", "fr-fr", {"title": "new asset"})
        snapshots.append(stack.published())

    with Emulator(stack, access_token=TOKEN, page_size=3) as emu:
        emu.faults.on_request = mutate
        cs = CsClient(emu)
        first = cs.initial()
        assert len(first.keys()) == len(set(first.keys())), "an item was delivered twice"
        assert {page["total_count"] for page in first.pages} == {len(first.items)}
        mirror = Mirror().apply(first.items)
        assert mirror.records == snapshots[0], "the initial sync is the stack as of its start"
        delta = cs.delta(first.sync_token)
        assert len(delta.keys()) == len(set(delta.keys()))
        emu.faults.on_request = None
        mirror.apply(delta.items)
        mirror.apply(cs.delta(delta.sync_token).items)
        assert mirror.records == stack.published()
        assert mirror.records[("entry", "author-1")]["en-us"]["_version"] == 1
        assert ("entry", "author-0") not in mirror.records
        cs.close()


UIDS = st.integers(min_value=0, max_value=3)  # few uids: edits often hit delivered items
OPS = st.one_of(
    st.tuples(
        st.sampled_from(["publish", "fallback", "unpublish", "delete"]),
        st.sampled_from(["entry", "asset"]),
        UIDS,
        st.sampled_from(LOCALES),
    ),
    st.tuples(st.just("drop_type"), st.just("entry"), UIDS, st.just("")),
)


def run_op(stack: Stack, op: tuple[str, str, int, str], serial: int) -> None:
    """Apply one random edit; edits the model refuses (nothing to remove) are skipped.

    "fallback" publishes ``locale`` by fallback, with the other locale's content."""
    action, kind, number, locale = op
    content_type = f"type-{number % 2}"
    uid = f"{kind}-{number}"
    content = None
    if action == "fallback":
        action, content = "publish", next(code for code in LOCALES if code != locale)
    try:
        if action == "drop_type":
            stack.delete_content_type(content_type)
        elif action == "publish" and kind == "entry":
            stack.publish_entry(
                uid, content_type, locale, {"title": f"{uid} #{serial}"}, content_locale=content
            )
        elif action == "publish":
            stack.publish_asset(uid, locale, {"title": f"{uid} #{serial}"}, content_locale=content)
        elif kind == "entry":
            (stack.delete_entry if action == "delete" else stack.unpublish_entry)(uid, locale)
        else:
            (stack.delete_asset if action == "delete" else stack.unpublish_asset)(uid, locale)
    except KeyError:
        pass


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    setup=st.lists(OPS, min_size=3, max_size=25),
    between_pages=st.lists(st.lists(OPS, min_size=1, max_size=4), max_size=8),
    page_size=st.integers(min_value=1, max_value=3),
    locale=st.sampled_from([None, *LOCALES]),
)
def test_any_interleaving_converges(
    setup: list[tuple[str, str, int, str]],
    between_pages: list[list[tuple[str, str, int, str]]],
    page_size: int,
    locale: str | None,
) -> None:
    stack = Stack(api_key=API_KEY, environment=ENVIRONMENT, locales=LOCALES)
    for serial, op in enumerate(setup):
        run_op(stack, op, serial)
    batches = iter(between_pages)

    def mutate(path: str, query: dict[str, list[str]]) -> None:
        for serial, op in enumerate(next(batches, [])):
            run_op(stack, op, 1000 + serial)

    with Emulator(stack, access_token=TOKEN, page_size=page_size) as emu:
        cs = CsClient(emu)
        filters = {} if locale is None else {"locale": locale}
        emu.faults.on_request = mutate
        mirror = Mirror()
        run = cs.initial(**filters)
        for attempt in range(3):
            keys = run.keys()
            assert len(keys) == len(set(keys)), "an item was delivered twice in one sync"
            totals = {page["total_count"] for page in run.pages}
            assert totals == {len(run.items)}
            skips = [page["skip"] for page in run.pages]
            assert skips == [page_size * number for number in range(len(run.pages))]
            mirror.apply(run.items)
            if attempt == 1:
                emu.faults.on_request = None  # the last delta settles without edits
            run = cs.delta(run.sync_token)
        mirror.apply(run.items)
        cs.close()
    expected = {
        key: {code: data for code, data in locales.items() if locale in (None, code)}
        for key, locales in stack.published().items()
    }
    assert mirror.records == {key: value for key, value in expected.items() if value}
