"""The public surface: what ``localcache`` exports, its error tree, and what it never shows."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import localcache
from localcache import errors

TOKEN = "sk-very-secret-0123456789abcdef"


def _public_attributes(module: ModuleType) -> set[str]:
    """Names a user can import from ``module`` that are not private, not imported submodules
    (``localcache.cache`` ...) and not ``from __future__`` features."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if type(value).__module__ == "__future__":
            continue
        if isinstance(value, ModuleType) and value.__name__ == f"{module.__name__}.{name}" \
                and name not in module.__all__:
            continue  # a submodule bound by an import, not exported
        names.add(name)
    return names


def test_all_matches_the_public_names_exactly() -> None:
    exported = localcache.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    public = _public_attributes(localcache)
    assert set(exported) - {"__version__"} == public


def test_every_name_in_all_is_importable() -> None:
    module = localcache
    for name in module.__all__:
        namespace: dict[str, object] = {}
        exec(f"from localcache import {name}", namespace)
        assert namespace[name] is getattr(module, name)
    star: dict[str, object] = {}
    exec("from localcache import *", star)
    assert set(star) - {"__builtins__"} == set(module.__all__)


def test_contract_names_are_exported() -> None:
    contract = {"Cache", "Contentful", "signals", "LocalCacheError"}
    assert contract <= set(localcache.__all__)
    assert localcache.signals is importlib.import_module("localcache.signals")
    assert isinstance(localcache.__version__, str) and localcache.__version__


def test_every_error_is_a_local_cache_error() -> None:
    classes = [value for value in vars(errors).values()
               if inspect.isclass(value) and issubclass(value, BaseException)
               and value.__module__ == errors.__name__]
    assert len(classes) >= 11
    for cls in classes:
        assert issubclass(cls, localcache.LocalCacheError), cls
        assert cls.__name__ in errors.__all__
        assert getattr(localcache, cls.__name__) is cls, f"{cls.__name__} not exported"


def test_error_tree_is_as_documented() -> None:
    e = errors
    assert issubclass(e.LocalCacheError, Exception)
    for child, parent in [
        (e.ConfigurationError, e.LocalCacheError), (e.StoreError, e.LocalCacheError),
        (e.SchemaVersionError, e.StoreError), (e.StoreMismatchError, e.StoreError),
        (e.StoreBusyError, e.StoreError), (e.SyncError, e.LocalCacheError),
        (e.AuthenticationError, e.SyncError), (e.TokenRejectedError, e.SyncError),
        (e.PageError, e.SyncError), (e.SnapshotError, e.LocalCacheError),
    ]:
        assert child.__bases__ == (parent,), child
    error = e.PageError("bad page", page=3, status=200, request_id="req-1")
    assert (error.page, error.status, error.request_id) == (3, 200, "req-1")


# -- the access token never shows -----------------------------------------------------------------


def test_reprs_never_contain_the_access_token(tmp_path: Path) -> None:
    provider = localcache.Contentful("space1", TOKEN, "master",
                                     base_url="http://127.0.0.1:9")
    texts = [repr(provider), str(provider), repr(provider.scope)]
    with localcache.Cache(provider, path=tmp_path / "store.sqlite3") as cache:
        texts += [repr(cache), str(cache), repr(cache.stats())]
    preview = localcache.Contentful("space1", TOKEN, preview=True)
    texts += [repr(preview), str(preview)]
    assert "space1" in texts[0]
    for text in texts:
        assert TOKEN not in text
        assert TOKEN[:12] not in text


# -- base URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://cdn.contentful.com",
    "http://example.com:8080/",
    "http://10.0.0.1",
    "http://192.168.1.20:5000",
    "http://localhost.example.com",
    "http://127.0.0.1.nip.io",
])
def test_plain_http_to_a_non_loopback_host_is_refused(url: str) -> None:
    with pytest.raises(localcache.ConfigurationError) as raised:
        localcache.Contentful("space1", TOKEN, base_url=url)
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1",
    "http://127.0.0.1:8080",
    "http://127.0.0.1:8080/",
    "http://localhost:5000",
    "http://[::1]:8080",
    "https://cdn.contentful.com",
    "https://example.com:8443",
])
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    provider = localcache.Contentful("space1", TOKEN, base_url=url)
    assert provider.base_url == url.rstrip("/")


def test_insecure_http_needs_an_explicit_opt_in() -> None:
    provider = localcache.Contentful("space1", TOKEN, base_url="http://example.com",
                                     allow_insecure_http=True)
    assert provider.base_url == "http://example.com"


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "https://",
                                 "https://user:pass@example.com"])
def test_malformed_base_urls_are_refused(url: str) -> None:
    with pytest.raises(localcache.ConfigurationError):
        localcache.Contentful("space1", TOKEN, base_url=url)
