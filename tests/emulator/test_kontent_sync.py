"""Kontent.ai Sync API v1 and v2 on the wire: init, deltas, filters, paging rules."""

from __future__ import annotations

from typing import Any

import pytest

from localcache.emulator.project import Project

from .test_kontent_support import ENV, Kontent, apply_v1, make_project, publish_article, serve


def test_v1_init_reports_nothing_that_already_exists() -> None:
    project = make_project()
    with serve(project) as emu:
        client = Kontent(emu)
        response = client.session.post(client.url("/sync/init"), timeout=10)
        assert response.status_code == 200
        assert response.json() == {"items": []}
        token = response.headers["X-Continuation"]
        body, follow = client.page(token)
        assert body == {"items": []}
        assert follow  # a fresh token every time


def test_v1_delta_looks_like_the_recorded_response(load_fixture: Any) -> None:
    recorded = load_fixture("kontent/sync_v1_changes.json")["items"]
    project = make_project()
    with serve(project) as emu:
        client = Kontent(emu)
        token = client.init()
        publish_article(project, 1, "default", "Warrior")
        project.delete_variant("art-00", "es-ES")
        pages, _ = client.follow(token)
    entries = pages[0]["items"]
    assert [entry["change_type"] for entry in entries] == ["deleted_item", "changed_item"]
    for ours, theirs in zip(entries, recorded, strict=True):
        assert ours.keys() == theirs.keys()
        assert ours["data"].keys() == theirs["data"].keys()  # deletions: system only
        assert set(theirs["data"]["system"]) <= set(ours["data"]["system"])
        assert ours["data"]["system"]["workflow"] == "default"
        assert ours["timestamp"].endswith("Z")
    changed = entries[1]["data"]
    assert changed["elements"]["title"] == {"type": "text", "name": "Title", "value": "Warrior"}
    assert changed == project.published()[("art-01", "default")]
    deleted = entries[0]
    assert deleted["data"]["system"]["language"] == "es-ES"
    assert deleted["timestamp"] > deleted["data"]["system"]["last_modified"]


def test_v1_sends_only_the_last_change_per_variant() -> None:
    project = make_project()
    with serve(project) as emu:
        client = Kontent(emu)
        token = client.init()
        for round_ in range(3):
            publish_article(project, 1, "default", f"edit {round_}")
        project.delete_item("art-02")  # both of its variants
        publish_article(project, 3, "default", "gone soon")
        project.delete_variant("art-03", "default")
        pages, _ = client.follow(token)
    seen = [
        (entry["data"]["system"]["id"], entry["data"]["system"]["language"], entry["change_type"])
        for entry in pages[0]["items"]
    ]
    assert sorted(seen) == [
        ("art-01", "default", "changed_item"),
        ("art-02", "default", "deleted_item"),
        ("art-02", "es-ES", "deleted_item"),
        ("art-03", "default", "deleted_item"),
    ]
    assert pages[0]["items"][0]["data"]["elements"]["title"]["value"] == "edit 2"


def test_v1_pages_hold_page_size_items_until_an_empty_one() -> None:
    project = make_project()
    with serve(project, page_size=3) as emu:
        client = Kontent(emu, page_size=3)
        token = client.init()
        for number in range(7):
            publish_article(project, 10 + number, "default")
        tokens = [token]
        sizes = []
        while True:
            body, token = client.page(token)
            tokens.append(token)
            sizes.append(len(body["items"]))
            if not body["items"]:
                break
        assert sizes == [3, 3, 1, 0]
        assert len(set(tokens[:4])) == 4  # an empty page may hand back the token it got
        publish_article(project, 1, "default", "later")
        body, _ = client.page(token)  # the stored token carries on with later changes
        assert [entry["data"]["system"]["id"] for entry in body["items"]] == ["art-01"]


def _changes_under(project: Project, params: dict[str, str]) -> set[tuple[str, str]]:
    with serve(project) as emu:
        client = Kontent(emu)
        token = client.init(**params)
        publish_article(project, 0, "default", "both languages exist")
        publish_article(project, 1, "default", "default only")
        publish_article(project, 2, "es-ES", "spanish edit")
        project.delete_variant("art-02", "es-ES")  # from now on art-02 falls back to default
        publish_article(project, 2, "default", "default edit")
        project.upsert_variant(
            "a-joe", "joe", "author", "default", {"name": "Joe 2"}, collection="people"
        )
        project.delete_variant("a-jane", "default")
        pages, _ = client.follow(token)
    return {(e["data"]["system"]["id"], e["data"]["system"]["language"]) for e in pages[0]["items"]}


ALL = {
    ("art-00", "default"),
    ("art-01", "default"),
    ("art-02", "es-ES"),
    ("art-02", "default"),
    ("a-joe", "default"),
    ("a-jane", "default"),
}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ALL),
        ({"system.type": "article"}, {k for k in ALL if k[0].startswith("art")}),
        ({"system.type[eq]": "author"}, {("a-joe", "default"), ("a-jane", "default")}),
        ({"system.type[neq]": "article"}, {("a-joe", "default"), ("a-jane", "default")}),
        ({"system.type[in]": "article,author"}, ALL),
        ({"system.type[nin]": "article,page"}, {("a-joe", "default"), ("a-jane", "default")}),
        ({"system.collection": "people"}, {("a-joe", "default")}),
        ({"system.collection[neq]": "people"}, ALL - {("a-joe", "default")}),
        ({"system.collection[in]": "people,campaigns"}, {("a-joe", "default")}),
        ({"system.collection[nin]": "people"}, ALL - {("a-joe", "default")}),
        ({"system.language": "es-ES"}, {("art-02", "es-ES")}),
        # Fallbacks: default-language changes count for items with no es-ES variant.
        ({"language": "es-ES"}, ALL - {("art-00", "default")}),
        ({"language": "default"}, ALL - {("art-02", "es-ES")}),
        (
            {"language": "es-ES", "system.type": "article"},
            {("art-01", "default"), ("art-02", "es-ES"), ("art-02", "default")},
        ),
    ],
)
def test_v1_filters(params: dict[str, str], expected: set[tuple[str, str]]) -> None:
    assert _changes_under(make_project(), params) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"language[eq]": "es-ES"},
        {"language": "xx-XX"},
        {"system.type[in]": ""},
        {"system.type[like]": "a"},
        {"elements.title": "x"},
    ],
)
def test_v1_init_rejects_unsupported_filters(params: dict[str, str]) -> None:
    with serve(make_project()) as emu:
        client = Kontent(emu)
        response = client.session.post(client.url("/sync/init"), params=params, timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"message", "request_id", "error_code", "specific_code"}


def test_v2_delta_has_four_arrays_like_the_recorded_response(load_fixture: Any) -> None:
    recorded = load_fixture("kontent/sync_v2_delta.json")
    project = make_project()
    project.add_type("page", elements={"title": "text"})
    project.upsert_taxonomy("tags", ["news", "blog"])
    project.upsert_taxonomy("old", [])
    project.add_language("de-DE")
    with serve(project) as emu:
        client = Kontent(emu)
        response = client.session.post(client.url("/sync/init", v2=True), timeout=10)
        assert response.json() == {"items": [], "types": [], "languages": [], "taxonomies": []}
        token = response.headers["X-Continuation"]
        publish_article(project, 1, "default", "changed")
        project.delete_variant("a-jane", "default")
        project.add_type("article", elements={"title": "text", "summary": "text"})
        project.delete_type("page")
        project.add_language("fr-FR")
        project.delete_language("de-DE")
        project.upsert_taxonomy("tags", ["news"])
        project.delete_taxonomy("old")
        pages, _ = client.follow(token, v2=True)
    assert len(pages) == 1
    body = pages[0]
    assert set(body) == set(recorded)
    for array, entries in body.items():
        assert sorted(entry["change_type"] for entry in entries) == ["changed", "deleted"], array
        for entry in entries:
            theirs = recorded[array][0]
            assert entry.keys() == theirs.keys()
            assert entry["data"].keys() == {"system"}  # metadata only
            assert set(theirs["data"]["system"]) <= set(entry["data"]["system"]), array
    item = next(e for e in body["items"] if e["change_type"] == "changed")["data"]["system"]
    assert item == project.published()[("art-01", "default")]["system"]


def test_v2_more_pages_while_any_array_is_full() -> None:
    project = make_project()
    with serve(project, page_size=3) as emu:
        client = Kontent(emu, page_size=3)
        token = client.init(v2=True)
        for number in range(7):
            publish_article(project, 10 + number, "default")
        project.add_type("page", elements={})
        sizes = []
        for _ in range(3):
            body, token = client.page(token, v2=True)
            sizes.append({name: len(entries) for name, entries in body.items()})
        assert sizes == [
            {"items": 3, "types": 1, "languages": 0, "taxonomies": 0},
            {"items": 3, "types": 0, "languages": 0, "taxonomies": 0},
            {"items": 1, "types": 0, "languages": 0, "taxonomies": 0},
        ]
        for number in range(3):  # exactly one full array: the client asks once more
            publish_article(project, 20 + number, "default")
        pages, _ = client.follow(token, v2=True)
        assert [len(page["items"]) for page in pages] == [3, 0]


def test_tokens_belong_to_their_api() -> None:
    with serve(make_project()) as emu:
        client = Kontent(emu)
        v1, v2 = client.init(), client.init(v2=True)
        for response in (client.sync(v1, v2=True), client.sync(v2)):
            assert response.status_code == 400
            assert response.json()["error_code"] == 107
        missing = client.session.get(client.url("/sync"), timeout=10)
        assert missing.status_code == 400 and missing.json()["error_code"] == 107
        with_filter = client.session.get(
            client.url("/sync"), params={"system.type": "article"}, headers={"X-Continuation": v1}
        )
        assert with_filter.status_code == 400  # filters belong to init
        assert client.session.get(client.url("/sync/init"), timeout=10).status_code == 405
        assert client.session.post(client.url("/sync"), timeout=10).status_code == 405
        assert (
            client.session.post(
                client.url("/sync/init", v2=True), params={"language": "x"}
            ).status_code
            == 400
        )
        assert client.session.get(f"{client.base}/v2/{ENV}/items").status_code == 404


def test_v1_store_follows_changes() -> None:
    project = make_project()
    with serve(project, page_size=2) as emu:
        client = Kontent(emu, page_size=2)
        token = client.init()
        store = client.load(project)
        assert store == project.published()
        publish_article(project, 7, "es-ES", "new")
        project.delete_item("art-00")
        project.upsert_variant(
            "a-jane", "jane", "author", "default", {"name": "J"}, collection="people"
        )
        pages, _ = client.follow(token)
        apply_v1(store, pages)
    assert store == project.published()


def test_moving_an_item_reports_every_variant() -> None:
    project = make_project()
    with serve(project) as emu:
        client = Kontent(emu)
        token = client.init(**{"system.collection": "campaigns"})
        project.upsert_variant(
            "art-00", "article_0", "article", "default", {}, collection="campaigns"
        )
        publish_article(project, 0, "es-ES", "collection kept")  # no collection: stays put
        pages, _ = client.follow(token)
    systems = [entry["data"]["system"] for entry in pages[0]["items"]]
    assert [(s["language"], s["collection"]) for s in systems] == [
        ("default", "campaigns"),
        ("es-ES", "campaigns"),
    ]
    assert pages[0]["items"][1]["data"]["elements"]["title"]["value"] == "collection kept"
