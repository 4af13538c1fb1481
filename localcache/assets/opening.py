"""Opening the asset files of a Cache: which policy, which directory, which vendor.

A Cache with a provider brings its own policy (``Cache(..., assets=AssetPolicy(...))``) and the
provider says where files come from. ``Cache.open(path, assets=True)`` has no provider: it
takes what the app's Cache stored in the store (the policy, its directory, the asset base URL)
and the built-in vendor the store's scope names. That is how ``localcache assets download``
does what the app would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import appdirs

from ..errors import ConfigurationError
from ..model import StoreScope
from ..store.database import Store
from .files import AssetFiles
from .policy import AssetPolicy
from .table import read_setting
from .wanted import vendor_for

__all__ = ["assets_directory", "default_directory", "open_asset_files"]


def default_directory(scope: StoreScope, app_name: str | None,
                      app_author: str | None) -> Path:
    """``user_cache_dir(app_name)/<space>-<environment>/assets``."""
    def safe(part: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", part).lstrip(".") or "_"

    root = appdirs.user_cache_dir(app_name or "localcache", app_author or False)
    return Path(root) / f"{safe(scope.space)}-{safe(scope.environment)}" / "assets"


def assets_directory(scope: StoreScope, policy: AssetPolicy, app_name: str | None,
                     app_author: str | None) -> Path:
    """Where a Cache with a provider keeps its files: the policy's directory, or the
    default."""
    if not isinstance(policy, AssetPolicy):
        raise ConfigurationError(f"Cache(assets=) takes an AssetPolicy, not {policy!r}")
    return Path(policy.directory) if policy.directory else default_directory(
        scope, app_name, app_author)


def open_asset_files(cache: Any, store: Store, provider: Any, assets: AssetPolicy | bool,
                     *, app_name: str | None = None, app_author: str | None = None,
                     asset_base_url: str | None = None) -> AssetFiles:
    """The AssetFiles of a Cache opening ``store``.

    With a provider, ``assets`` is the policy and the provider says where files come from.
    Without one (``Cache.open``), ``assets=True`` takes the policy, directory and asset base
    URL the app's own Cache stored (the CLI's way), and a policy without a directory takes the
    stored directory; ``asset_base_url`` overrides the stored one.
    """
    if not isinstance(assets, AssetPolicy) and assets is not True:
        raise ConfigurationError(f"assets= takes an AssetPolicy, not {assets!r}")
    scope = store.scope or StoreScope("", "", "")
    with store.reading():
        conn = store.raw_connection()
        text, stored_base = read_setting(conn, "policy"), read_setting(conn, "asset_base_url")
    stored = AssetPolicy.from_json(text) if text else None
    if provider is not None:
        if not isinstance(assets, AssetPolicy):
            raise ConfigurationError("Cache(assets=) takes an AssetPolicy")
        policy = assets
        base = getattr(provider, "asset_base_url", None)
        http = getattr(provider, "http_policy", None)
    else:
        policy = assets if isinstance(assets, AssetPolicy) else (stored or AssetPolicy())
        base = asset_base_url if asset_base_url is not None else stored_base
        http = None
    directory = policy.directory or (stored.directory if stored and provider is None
                                     else None)
    vendor = vendor_for(provider, scope.provider, base)
    return AssetFiles(cache, store, vendor, policy, Path(directory) if directory else
                      default_directory(scope, app_name, app_author),
                      asset_base_url=base, http_policy=http)
