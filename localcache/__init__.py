"""localcache: an offline-first SQLite cache of a headless CMS, kept current by its Sync API.

Public names come only from here; everything else is private and may change.
"""

from __future__ import annotations

import logging as _logging

from . import signals
from ._version import __version__
from .assets.check import AssetReport
from .assets.files import AssetFiles, AssetStats
from .assets.policy import AssetPolicy
from .assets.runner import AssetDownload
from .autosync import AutoSync, SyncStatus
from .cache import Cache
from .errors import (
    AssetError,
    AuthenticationError,
    ConfigurationError,
    LocalCacheError,
    PageError,
    QueryError,
    SchemaVersionError,
    SnapshotError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    SyncError,
    TokenRejectedError,
)
from .model import ContentTypeInfo, FieldInfo, LocaleInfo
from .providers.contentful import Contentful
from .providers.contentstack import Contentstack
from .providers.http import HttpPolicy
from .providers.kontent import Kontent
from .searching import SearchHit
from .signals import ChangeSet
from .snapshot import SnapshotInfo
from .store.query import Record
from .sync.engine import SyncResult, TypeCounts

# A library logs; the application decides where logs go (no "last resort" output on stderr).
_logging.getLogger("localcache").addHandler(_logging.NullHandler())

__all__ = [
    "AssetDownload",
    "AssetError",
    "AssetFiles",
    "AssetPolicy",
    "AssetReport",
    "AssetStats",
    "AuthenticationError",
    "AutoSync",
    "Cache",
    "ChangeSet",
    "ConfigurationError",
    "ContentTypeInfo",
    "Contentful",
    "Contentstack",
    "FieldInfo",
    "HttpPolicy",
    "Kontent",
    "LocalCacheError",
    "LocaleInfo",
    "PageError",
    "QueryError",
    "Record",
    "SchemaVersionError",
    "SearchHit",
    "SnapshotError",
    "SnapshotInfo",
    "StoreBusyError",
    "StoreCorruptError",
    "StoreError",
    "StoreMismatchError",
    "SyncError",
    "SyncResult",
    "SyncStatus",
    "TokenRejectedError",
    "TypeCounts",
    "__version__",
    "signals",
]
