"""Each switchable fault on the Kontent.ai wire, for Sync and Delivery requests alike."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import pytest
import requests

from localcache.emulator import Emulator

from .test_kontent_support import ENV, Kontent, apply_v1, make_project, publish_article, serve


def _requests(client: Kontent, token: str) -> list[requests.Response]:
    """One Delivery and one Sync request of each API version."""
    return [client.get("/items"), client.sync(token), client.get("/languages")]


@pytest.fixture
def served() -> Iterator[tuple[Emulator, Kontent, str]]:
    with serve(make_project()) as emu:
        client = Kontent(emu)
        yield emu, client, client.init()
        client.close()


def test_latency(served: tuple[Emulator, Kontent, str]) -> None:
    emu, client, token = served
    emu.faults.latency = 0.2
    started = time.perf_counter()
    client.sync(token)
    client.get("/items")
    assert time.perf_counter() - started >= 0.4


def test_server_errors_hit_delivery_and_sync(served: tuple[Emulator, Kontent, str]) -> None:
    emu, client, token = served
    emu.faults.server_error(times=3, status=503)
    for response in _requests(client, token):
        assert response.status_code == 503
        assert set(response.json()) == {"message", "request_id", "error_code", "specific_code"}
    assert emu.faults.pending == 0
    assert all(response.status_code == 200 for response in _requests(client, token))


def test_rate_limit_carries_retry_after(served: tuple[Emulator, Kontent, str]) -> None:
    emu, client, token = served
    emu.faults.rate_limit(times=2, reset=7)
    for response in (client.get("/items-feed"), client.sync(token)):
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json()["request_id"] == response.headers["X-Request-Id"]
    assert client.sync(token).status_code == 200


def test_malformed_json_then_recovery(served: tuple[Emulator, Kontent, str]) -> None:
    emu, client, token = served
    emu.faults.malformed_json(times=2)
    for response in (client.sync(token), client.get("/items/article_0")):
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()
    assert client.sync(token).json() == {"items": []}


def test_truncate_cuts_the_body_of_any_request(served: tuple[Emulator, Kontent, str]) -> None:
    emu, client, token = served
    emu.faults.truncate(times=2)
    with pytest.raises(requests.exceptions.RequestException):
        client.get("/items")
    connection = http.client.HTTPConnection("127.0.0.1", int(emu.base_url.rsplit(":", 1)[1]))
    connection.request("GET", f"/{ENV}/sync", headers={"X-Continuation": token})
    response = connection.getresponse()
    announced = int(response.headers["Content-Length"])
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    assert len(caught.value.partial) == announced // 2
    connection.close()
    assert client.get("/items").status_code == 200


def test_reject_tokens_switch() -> None:
    project = make_project()
    with serve(project) as emu:
        client = Kontent(emu)
        v1, v2 = client.init(), client.init(v2=True)
        emu.faults.reject_tokens = True
        for response in (client.sync(v1), client.sync(v2, v2=True)):
            assert response.status_code == 400
            assert response.json()["error_code"] == 107
        assert client.session.post(client.url("/sync/init"), timeout=10).status_code == 200
        assert client.get("/items").status_code == 200  # Delivery is unaffected
        emu.faults.reject_tokens = False
        assert client.sync(v1).status_code == 200


def test_invalidate_tokens_before_now_then_recover_by_a_fresh_init() -> None:
    project = make_project()
    with serve(project, page_size=2) as emu:
        client = Kontent(emu, page_size=2)
        token = client.init()
        store = client.load(project)
        for number in range(5):
            publish_article(project, 20 + number, "default")
        _, mid_round = client.page(token)  # a token in the middle of a round
        emu.faults.invalidate_tokens_before_now()
        for stale in (token, mid_round):
            response = client.sync(stale)
            assert response.status_code == 400
            assert "X-Continuation" in response.json()["message"]
        # The documented recovery: init again, reload everything, then carry on.
        fresh = client.init()
        store = client.load(project)
        project.delete_item("art-20")
        pages, _ = client.follow(fresh)
        apply_v1(store, pages)
        assert store == project.published()


def test_on_request_hook_sees_sync_and_delivery(served: tuple[Emulator, Kontent, str]) -> None:
    emu, client, token = served
    seen: list[tuple[str, dict[str, list[str]]]] = []
    emu.faults.on_request = lambda path, query: seen.append((path, query))
    client.get("/items", language="es-ES")
    client.sync(token)
    client.init(v2=True)
    client.get("/nowhere")  # not a route: no hook
    assert seen == [
        (f"/{ENV}/items", {"language": ["es-ES"]}),
        (f"/{ENV}/sync", {}),
        (f"/v2/{ENV}/sync/init", {}),
    ]


def test_failing_hook_is_a_500_not_a_dead_server(served: tuple[Emulator, Kontent, str]) -> None:
    emu, client, token = served

    def explode(path: str, query: dict[str, list[str]]) -> None:
        raise RuntimeError("test hook failed")

    emu.faults.on_request = explode
    assert client.sync(token).status_code == 500
    emu.faults.on_request = None
    assert client.sync(token).status_code == 200


def test_feed_continuations_are_refused_like_sync_tokens() -> None:
    """A stale ``items-feed`` continuation is refused with 400 (error 107), as the real API
    refuses one: after ``invalidate_tokens_before_now`` and while ``reject_tokens`` is on."""
    with serve(make_project(articles=6), page_size=2) as emu:
        client = Kontent(emu, page_size=2)
        first = client.get("/items-feed")
        continuation = {"X-Continuation": first.headers["X-Continuation"]}
        assert client.get("/items-feed", headers=continuation).status_code == 200
        emu.faults.reject_tokens = True
        refused = client.get("/items-feed", headers=continuation)
        assert refused.status_code == 400 and refused.json()["error_code"] == 107
        assert client.get("/items-feed").status_code == 200  # a feed from its start still works
        emu.faults.reject_tokens = False
        emu.faults.invalidate_tokens_before_now()
        refused = client.get("/items-feed", headers=continuation)
        assert refused.status_code == 400 and "X-Continuation" in refused.json()["message"]
        fresh = client.get("/items-feed").headers["X-Continuation"]
        assert client.get("/items-feed", headers={"X-Continuation": fresh}).status_code == 200
