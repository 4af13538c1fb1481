"""Where a store lives by default: the platform's per-user data directory (appdirs)."""

from __future__ import annotations

import re
from pathlib import Path

import appdirs

from .model import StoreScope

__all__ = ["default_store_path"]

DEFAULT_APP_NAME = "localcache"


def default_store_path(
    scope: StoreScope, app_name: str | None = None, app_author: str | None = None
) -> Path:
    """``user_data_dir(app_name, app_author)/<space>-<environment>.sqlite3``."""
    directory = appdirs.user_data_dir(app_name or DEFAULT_APP_NAME, app_author or False)
    return Path(directory) / f"{_safe(scope.space)}-{_safe(scope.environment)}.sqlite3"


def _safe(part: str) -> str:
    # Space and environment ids are [A-Za-z0-9_-]; anything else must not steer the path.
    return re.sub(r"[^A-Za-z0-9_.-]", "_", part).lstrip(".") or "_"
