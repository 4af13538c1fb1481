"""Contentstack CDA content types on the wire: ``GET /v3/content_types`` and one type by uid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from localcache.emulator import Emulator
from localcache.emulator.stack import Stack

from .test_contentstack_support import API_KEY, ENVIRONMENT, TOKEN, make_stack


@pytest.fixture
def stack() -> Stack:
    stack = make_stack(articles=2, authors=1, assets=0)
    stack.add_content_type("article", "Article", [
        {"uid": "title", "display_name": "Title", "data_type": "text", "mandatory": True},
        {"uid": "body", "display_name": "Body", "data_type": "text"},
        {"uid": "author", "display_name": "Author", "data_type": "reference",
         "non_localizable": True},
    ])
    return stack


@pytest.fixture
def cda(stack: Stack) -> Iterator[Any]:
    with Emulator(stack, access_token=TOKEN) as emu, requests.Session() as session:
        session.headers.update({"api_key": API_KEY, "access_token": TOKEN})

        def get(path: str = "", **params: Any) -> requests.Response:
            return session.get(f"{emu.base_url}/v3/content_types{path}", params=params,
                               timeout=10)

        yield get


def test_lists_defined_and_implicit_types(cda: Any) -> None:
    body = cda(include_count="true", environment=ENVIRONMENT).json()
    assert body["count"] == 2
    article, author = body["content_types"]
    assert (article["uid"], article["title"], article["_version"]) == ("article", "Article", 2)
    assert [f["uid"] for f in article["schema"]] == ["title", "body", "author"]
    assert article["schema"][2]["non_localizable"] is True
    assert article["options"]["title"] == "title"
    # A type entries were published under without a definition gets Contentstack's default:
    # the title field every entry has.
    assert author["uid"] == "author" and [f["uid"] for f in author["schema"]] == ["title"]
    assert author["created_at"] <= author["updated_at"]
    assert "count" not in cda().json()


def test_skip_limit_and_one_type(cda: Any, stack: Stack) -> None:
    for number in range(5):
        stack.add_content_type(f"extra_{number}")
    page = cda(skip="1", limit="3", include_count="true").json()
    assert [t["uid"] for t in page["content_types"]] == ["author", "extra_0", "extra_1"]
    assert page["count"] == 7
    assert cda("/article").json()["content_type"]["uid"] == "article"
    missing = cda("/nope")
    assert missing.status_code == 422 and missing.json()["error_code"] == 118
    assert cda(limit="101").status_code == 422
    assert cda(environment="staging").status_code == 422


def test_deleting_a_type_removes_it(cda: Any, stack: Stack) -> None:
    stack.delete_content_type("author")
    assert [t["uid"] for t in cda().json()["content_types"]] == ["article"]
    stack.add_content_type("empty")                 # a type no entry uses can go too
    stack.delete_content_type("empty")
    assert stack.content_types == ["article"]


def test_credentials_are_checked(stack: Stack) -> None:
    with Emulator(stack, access_token=TOKEN) as emu:
        response = requests.get(f"{emu.base_url}/v3/content_types",
                                headers={"api_key": API_KEY, "access_token": "wrong"},
                                timeout=10)
    assert response.status_code == 412


def test_model_rejects_bad_definitions(stack: Stack) -> None:
    with pytest.raises(ValueError, match="uid"):
        stack.add_content_type("x", schema=[{"display_name": "No uid", "data_type": "text"}])
    with pytest.raises(ValueError, match="title field"):
        stack.add_content_type("x", schema=[{"uid": "name", "data_type": "text"}])
    with pytest.raises(ValueError, match="invalid"):
        stack.add_content_type("sys_assets")
