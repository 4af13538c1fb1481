"""Contentstack error bodies and switchable faults, as a client sees them on the wire."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
import requests

from localcache.emulator import Emulator
from localcache.emulator.stack import Stack

from .test_contentstack_support import (
    API_KEY,
    ENVIRONMENT,
    TOKEN,
    CsClient,
    assert_cs_error,
    make_stack,
)


@pytest.fixture
def stack() -> Stack:
    return make_stack()


@pytest.fixture
def emu(stack: Stack) -> Iterator[Emulator]:
    with Emulator(stack, access_token=TOKEN, page_size=4) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[CsClient]:
    cs = CsClient(emu)
    yield cs
    cs.close()


# -- authentication and parameters -----------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "token"), [("blt_other", TOKEN), (API_KEY, "wrong"), ("", TOKEN), (API_KEY, "")]
)
def test_unknown_stack_or_token_is_412_code_109(emu: Emulator, api_key: str, token: str) -> None:
    cs = CsClient(emu, api_key=api_key, token=token)
    emu.faults.server_error()
    assert_cs_error(cs.get(init="true"), 412, 109, "api_key")
    assert emu.faults.pending == 1, "rejected requests do not consume faults"
    cs.close()


def test_credentials_in_the_query_are_accepted(emu: Emulator) -> None:
    response = requests.get(
        f"{emu.base_url}/v3/stacks/sync",
        params={
            "init": "true",
            "environment": ENVIRONMENT,
            "api_key": API_KEY,
            "access_token": TOKEN,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_environment_and_branch(client: CsClient) -> None:
    assert_cs_error(client.get(environment=None, init="true"), 422, 141, "environment")
    assert_cs_error(client.get(environment="staging", init="true"), 422, 141, "environment")
    token = client.initial().sync_token
    assert_cs_error(client.get(environment="staging", sync_token=token), 422, 141, "environment")
    client.session.headers["environment"] = ENVIRONMENT  # the SDK sends it as a header too
    assert client.get(environment=None, init="true").status_code == 200
    client.session.headers["branch"] = "main"
    assert client.get(sync_token=token).status_code == 200
    client.session.headers["branch"] = "develop"
    assert_cs_error(client.get(init="true"), 422, 141, "branch")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "init"),
        ({"init": "false"}, "init"),
        ({"init": "true", "type": "entry_published,bogus"}, "type"),
        ({"init": "true", "type": ""}, "type"),
        ({"init": "true", "locale": ""}, "locale"),
        ({"init": "true", "start_from": "yesterday"}, "start_from"),
        ({"init": "true", "sync_token": "x"}, "sync_token"),
        ({"pagination_token": "x", "sync_token": "x"}, "sync_token"),
    ],
)
def test_bad_parameters_are_422(client: CsClient, params: dict[str, str], field: str) -> None:
    assert_cs_error(client.get(**params), 422, 141, field)


@pytest.mark.parametrize("name", ["content_type_uid", "locale", "start_from", "type"])
@pytest.mark.parametrize("mode", ["sync_token", "pagination_token"])
def test_filters_are_refused_with_a_token(client: CsClient, name: str, mode: str) -> None:
    first = client.get(init="true").json()
    token = first["pagination_token"] if mode == "pagination_token" else client.initial().sync_token
    assert client.get(**{mode: token}).status_code == 200
    value = "2024-01-01" if name == "start_from" else "entry_published"
    assert_cs_error(client.get(**{mode: token, name: value}), 422, 141, name)


def test_unknown_paths_and_methods(emu: Emulator, client: CsClient) -> None:
    response = client.session.get(f"{emu.base_url}/v3/locales", timeout=10)
    assert response.status_code == 404  # languages are the Management API's, not the CDA's
    assert client.session.post(client.url, timeout=10).status_code == 405


# -- tokens ------------------------------------------------------------------------------------


def test_invalid_tokens_are_422_code_141(client: CsClient) -> None:
    page = client.get(init="true").json()
    pagination = page["pagination_token"]
    sync = client.initial().sync_token
    body, _, signature = sync.rpartition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["from"] = 0  # replay everything: the signature no longer matches
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    for mode, bad in [
        ("sync_token", "blt122334455667"),
        ("sync_token", ""),
        ("sync_token", "\u00e9t\u00e9.\u00e9"),
        ("sync_token", f"{forged}.{signature}"),
        ("sync_token", pagination),  # a pagination token is not a sync token
        ("pagination_token", sync),
    ]:
        body_json = assert_cs_error(client.get(**{mode: bad}), 422, 141, mode)
        assert body_json == {
            "error_message": "Failed to fetch items. Please try again with valid parameters.",
            "error_code": 141,
            "errors": {mode: ["is not valid."]},
        }


def test_tokens_of_another_stack_are_refused(stack: Stack, client: CsClient) -> None:
    token = client.initial().sync_token
    twin = make_stack()  # same api_key, environment and content; another server's history
    with Emulator(twin, access_token=TOKEN) as other:
        cs = CsClient(other)
        assert_cs_error(cs.get(sync_token=token), 422, 141, "sync_token")
        cs.close()


def test_reject_tokens_and_invalidation(emu: Emulator, client: CsClient) -> None:
    pagination = client.get(init="true").json()["pagination_token"]
    sync = client.initial().sync_token
    emu.faults.reject_tokens = True
    assert_cs_error(client.get(sync_token=sync), 422, 141, "sync_token")
    assert_cs_error(client.get(pagination_token=pagination), 422, 141, "pagination_token")
    assert client.get(init="true").status_code == 200
    emu.faults.reject_tokens = False
    assert client.get(sync_token=sync).status_code == 200
    emu.faults.invalidate_tokens_before_now()
    assert_cs_error(client.get(sync_token=sync), 422, 141, "sync_token")
    assert_cs_error(client.get(pagination_token=pagination), 422, 141, "pagination_token")
    emu.faults.clear()
    assert_cs_error(client.get(sync_token=sync), 422, 141, "sync_token")  # stays invalid
    fresh = client.initial()
    assert len(fresh.items) == 13
    assert client.delta(fresh.sync_token).items == []


# -- faults ------------------------------------------------------------------------------------


def test_server_errors_then_recovery(emu: Emulator, client: CsClient) -> None:
    emu.faults.server_error(times=2, status=503)
    assert_cs_error(client.get(init="true"), 503, 503)
    assert_cs_error(client.get(init="true"), 503, 503)
    assert client.get(init="true").status_code == 200
    emu.faults.server_error(status=500)
    assert_cs_error(client.get(init="true"), 500, 500)
    assert emu.faults.pending == 0


def test_rate_limit_sends_retry_after(emu: Emulator, client: CsClient) -> None:
    emu.faults.rate_limit(reset=3)
    response = client.get(init="true")
    assert_cs_error(response, 429, 429)
    assert response.headers["Retry-After"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert client.get(init="true").status_code == 200


def test_truncated_body_drops_the_connection(emu: Emulator, client: CsClient) -> None:
    emu.faults.truncate()
    with pytest.raises(requests.exceptions.RequestException):
        client.get(init="true").json()
    assert client.get(init="true").json()["total_count"] == 13


def test_malformed_json_then_recovery(emu: Emulator, client: CsClient) -> None:
    emu.faults.malformed_json()
    response = client.get(init="true")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert client.get(init="true").json()["items"]


def test_faults_apply_in_order_to_any_sync_request(emu: Emulator, client: CsClient) -> None:
    token = client.get(init="true").json()["pagination_token"]
    emu.faults.rate_limit()
    emu.faults.server_error(status=502)
    assert client.get(pagination_token=token).status_code == 429
    assert client.get(pagination_token=token).status_code == 502
    assert client.get(pagination_token=token).json()["skip"] == 4


def test_hook_sees_every_sync_request_and_latency_applies(emu: Emulator, client: CsClient) -> None:
    seen: list[tuple[str, dict[str, list[str]]]] = []
    emu.faults.on_request = lambda path, query: seen.append((path, query))
    client.get(init="true", locale="en-us")
    assert seen == [
        ("/v3/stacks/sync", {"init": ["true"], "locale": ["en-us"], "environment": [ENVIRONMENT]})
    ]
    emu.faults.latency = 0.2
    started = time.perf_counter()
    assert client.get(init="true").status_code == 200
    assert time.perf_counter() - started >= 0.2
