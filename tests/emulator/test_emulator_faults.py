"""Each switchable fault, as a client sees it on the wire."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from localcache.emulator import Emulator, Space

from .helpers import Cda, apply, article, assert_error, expected_store


def test_latency_applies_to_every_request(emu: Emulator, cda: Cda) -> None:
    emu.faults.latency = 0.25
    started = time.perf_counter()
    assert cda.get(cda.url("/locales")).status_code == 200
    assert time.perf_counter() - started >= 0.25
    emu.faults.latency = 0
    started = time.perf_counter()
    cda.get(cda.url("/locales"))
    assert time.perf_counter() - started < 0.25


def test_server_errors_then_recovery(emu: Emulator, cda: Cda) -> None:
    emu.faults.server_error(times=2, status=503)
    assert emu.faults.pending == 2
    assert cda.get(cda.url("/locales")).status_code == 200  # only sync requests are spoiled
    url = cda.url("/sync")
    assert_error(cda.get(url, initial="true"), 503, "ServiceUnavailable")
    assert_error(cda.get(url, initial="true"), 503, "ServiceUnavailable")
    assert cda.get(url, initial="true").status_code == 200
    emu.faults.server_error(status=500)
    assert_error(cda.get(url, initial="true"), 500, "InternalServerError")
    with pytest.raises(ValueError):
        emu.faults.server_error(status=404)


def test_rate_limit_carries_reset_header(emu: Emulator, cda: Cda) -> None:
    emu.faults.rate_limit(times=1, reset=7)
    response = cda.get(cda.url("/sync"), initial="true")
    assert_error(response, 429, "RateLimitExceeded")
    assert response.headers["X-Contentful-RateLimit-Reset"] == "7"
    assert cda.get(cda.url("/sync"), initial="true").status_code == 200


def test_faults_are_consumed_in_order(emu: Emulator, cda: Cda) -> None:
    emu.faults.rate_limit(reset=1)
    emu.faults.server_error(status=502)
    emu.faults.malformed_json()
    url = cda.url("/sync")
    assert cda.get(url, initial="true").status_code == 429
    assert cda.get(url, initial="true").status_code == 502
    response = cda.get(url, initial="true")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert cda.get(url, initial="true").json()["items"]
    assert emu.faults.pending == 0


def test_truncated_body_breaks_the_read_then_recovers(emu: Emulator, cda: Cda) -> None:
    emu.faults.truncate()
    with pytest.raises(requests.exceptions.RequestException):
        cda.get(cda.url("/sync"), initial="true")
    assert cda.get(cda.url("/sync"), initial="true").status_code == 200


def test_truncate_announces_full_length(emu: Emulator) -> None:
    import http.client

    emu.faults.truncate()
    connection = http.client.HTTPConnection("127.0.0.1", int(emu.base_url.rsplit(":", 1)[1]))
    connection.request(
        "GET",
        "/spaces/demo/environments/master/sync?initial=true",
        headers={"Authorization": "Bearer secret-token"},
    )
    response = connection.getresponse()
    announced = int(response.headers["Content-Length"])
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    assert len(caught.value.partial) == announced // 2
    connection.close()


def test_reject_tokens_switch(emu: Emulator, cda: Cda) -> None:
    first = cda.initial(limit=10)
    emu.faults.reject_tokens = True
    body = assert_error(cda.get(first.next_sync_url), 400, "BadRequest")
    assert body["message"].startswith("The sync token is invalid")
    assert cda.get(cda.url("/sync"), initial="true").status_code == 200  # no token: fine
    emu.faults.reject_tokens = False
    assert cda.get(first.next_sync_url).status_code == 200


def test_invalidate_tokens_before_now(space: Space, emu: Emulator, cda: Cda) -> None:
    page_one = cda.get(cda.url("/sync"), initial="true", limit=5).json()
    old = cda.initial()
    emu.faults.invalidate_tokens_before_now()
    assert_error(cda.get(old.next_sync_url), 400, "BadRequest")
    assert_error(cda.get(page_one["nextPageUrl"]), 400, "BadRequest")
    # Recovery as documented: a fresh initial sync, whose tokens work.
    space.delete_entry("article-000")
    fresh = cda.initial(limit=5)
    space.publish_entry("article-001", "article", article("after reset"))
    delta = cda.follow(fresh.next_sync_url)
    store: dict[tuple[str, str], dict[str, Any]] = {}
    apply(store, fresh.items)
    apply(store, delta.items)
    assert store == expected_store(space)


def test_on_request_hook_sees_sync_requests_only(emu: Emulator, cda: Cda) -> None:
    seen: list[tuple[str, dict[str, list[str]]]] = []
    emu.faults.on_request = lambda path, query: seen.append((path, query))
    cda.get(cda.url("/locales"))
    cda.initial(limit=20)
    assert [path for path, _ in seen] == ["/spaces/demo/environments/master/sync"] * 2
    assert seen[0][1] == {"initial": ["true"], "limit": ["20"]}
    assert list(seen[1][1]) == ["sync_token"]


def test_failing_hook_is_a_500_not_a_dead_server(emu: Emulator, cda: Cda) -> None:
    def explode(path: str, query: dict[str, list[str]]) -> None:
        raise RuntimeError("test hook failed")

    emu.faults.on_request = explode
    assert_error(cda.get(cda.url("/sync"), initial="true"), 500, "InternalServerError")
    emu.faults.on_request = None
    assert cda.get(cda.url("/sync"), initial="true").status_code == 200


def test_clear_resets_everything(emu: Emulator, cda: Cda) -> None:
    emu.faults.latency = 5
    emu.faults.reject_tokens = True
    emu.faults.server_error(times=3)
    emu.faults.on_request = lambda path, query: None
    emu.faults.clear()
    assert emu.faults.pending == 0
    assert emu.faults.latency == 0 and not emu.faults.reject_tokens
    assert emu.faults.on_request is None
    result = cda.initial()
    assert cda.get(result.next_sync_url).status_code == 200
