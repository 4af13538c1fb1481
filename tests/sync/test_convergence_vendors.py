"""The convergence property for Contentstack and Kontent.ai: random per-locale edit histories,
with syncs and broken syncs at random points, end with the store equal to the server."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import run_program

from localcache import Cache, Contentstack, HttpPolicy, Kontent
from localcache.emulator import Emulator, Project, Stack
from localcache.providers.contentstack import SYSTEM_KEYS

TOKEN = "vendor-test-token"
POLICY = HttpPolicy(max_attempts=2, backoff_base=0.001)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# -- Contentstack ---------------------------------------------------------------------------

UIDS = [f"blt{i}" for i in range(6)]
LOCALES = ["en-us", "fr-fr"]
stack_ops = st.one_of(
    st.tuples(st.just("publish"), st.sampled_from(UIDS), st.sampled_from(LOCALES),
              st.text(max_size=6)),
    st.tuples(st.just("unpublish"), st.sampled_from(UIDS), st.sampled_from(LOCALES)),
    st.tuples(st.just("delete"), st.sampled_from(UIDS), st.sampled_from(LOCALES)),
    st.tuples(st.just("asset"), st.sampled_from(UIDS[:2]), st.sampled_from(LOCALES)),
    st.tuples(st.just("drop_type")),
    st.tuples(st.just("sync")),
    st.tuples(st.just("broken_sync"), st.integers(min_value=1, max_value=3)),
)


def _stack_expected(stack: Any) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    expected: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for (kind, uid), by_locale in stack.published().items():
        fields: dict[str, dict[str, Any]] = {}
        for locale, data in by_locale.items():
            for name, value in data.items():
                if name not in SYSTEM_KEYS:
                    fields.setdefault(name, {})[locale] = value
        expected[("Entry" if kind == "entry" else "Asset", uid)] = fields
    return expected


@SETTINGS
@given(program=st.lists(stack_ops, min_size=1, max_size=25))
def test_contentstack_histories_converge(tmp_path_factory: Any,
                                         program: list[tuple[Any, ...]]) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=LOCALES)
    path: Path = tmp_path_factory.mktemp("cs") / "store.sqlite3"

    def edit(op: tuple[Any, ...]) -> None:
        kind = op[0]
        published = stack.published()
        if kind == "publish":
            content_type = "page" if op[1] == UIDS[-1] else "blog"
            with contextlib.suppress(ValueError):
                stack.publish_entry(op[1], content_type, op[2], {"title": op[3] or "t"})
        elif kind in ("unpublish", "delete") and op[2] in published.get(("entry", op[1]), {}):
            (stack.unpublish_entry if kind == "unpublish" else stack.delete_entry)(op[1], op[2])
        elif kind == "asset":
            stack.publish_asset(op[1], op[2], {"title": op[1], "filename": f"{op[1]}.png",
                                               "url": f"https://img.example/{op[1]}.png"})
        elif kind == "drop_type" and any(k == ("entry", UIDS[-1]) for k in published):
            stack.delete_content_type("page")

    with Emulator(stack, access_token=TOKEN, page_size=3) as emulator, \
            Cache(Contentstack("blt_api", TOKEN, "production", base_url=emulator.base_url,
                               http=POLICY), path=path) as cache:
        run_program(emulator, cache, program, edit)
        stored = {("Entry", r.id): r.fields for r in cache.entries()}
        for kind, uid in _stack_expected(stack):
            if kind == "Asset":
                asset = cache.asset(uid)
                stored[("Asset", uid)] = asset.fields if asset else {}
        assert stored == _stack_expected(stack)
        assert cache.stats()["assets"] == sum(1 for k in _stack_expected(stack) if k[0] == "Asset")


# -- Kontent.ai -----------------------------------------------------------------------------

ITEMS = [(f"00000000-0000-4000-8000-00000000000{i}", f"item_{i}") for i in range(5)]
LANGUAGES = ["default", "es-ES"]
kontent_ops = st.one_of(
    st.tuples(st.just("upsert"), st.sampled_from(ITEMS), st.sampled_from(LANGUAGES),
              st.text(max_size=6)),
    st.tuples(st.just("delete_variant"), st.sampled_from(ITEMS), st.sampled_from(LANGUAGES)),
    st.tuples(st.just("delete_item"), st.sampled_from(ITEMS)),
    st.tuples(st.just("sync")),
    st.tuples(st.just("broken_sync"), st.integers(min_value=1, max_value=4)),
)


@SETTINGS
@given(program=st.lists(kontent_ops, min_size=1, max_size=25),
       version=st.sampled_from([1, 2]))
def test_kontent_histories_converge(tmp_path_factory: Any, program: list[tuple[Any, ...]],
                                    version: int) -> None:
    project = Project(environment_id="975bf280-fd91-488c-994c-2f04416e5ee3",
                                     languages=LANGUAGES)
    project.add_type("article", elements={"title": "text"})
    path: Path = tmp_path_factory.mktemp("kt") / "store.sqlite3"

    def edit(op: tuple[Any, ...]) -> None:
        published = project.published()
        if op[0] == "upsert":
            (item_id, codename), language = op[1], op[2]
            project.upsert_variant(item_id, codename, "article", language,
                                   {"title": op[3] or "t"})
        elif op[0] == "delete_variant" and (op[1][0], op[2]) in published:
            project.delete_variant(op[1][0], op[2])
        elif op[0] == "delete_item" and any(key[0] == op[1][0] for key in published):
            project.delete_item(op[1][0])

    # Sync v2 pages hold 100 entries on the real API ("more while any array holds 100"), so
    # the emulator must too; v1 repeats until a page is empty, so small pages test paging.
    with Emulator(project, access_token=None, page_size=3 if version == 1 else 100) as emulator, \
            Cache(Kontent(project.environment_id, api_version=version,
                          base_url=emulator.base_url, http=POLICY), path=path) as cache:
        run_program(emulator, cache, program, edit)
        expected: dict[str, dict[str, dict[str, Any]]] = {}
        for (item_id, language), item in project.published().items():
            for codename, element in item["elements"].items():
                expected.setdefault(item_id, {}).setdefault(codename, {})[language] = element
        assert {r.id: r.fields for r in cache.entries()} == expected
