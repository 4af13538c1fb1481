"""Every error localcache raises to an app.

The whole tree, in one place::

    LocalCacheError
     ├── ConfigurationError        bad arguments: a missing space id, an http:// URL, ...
     ├── StoreError                the SQLite file could not be used
     │    ├── SchemaVersionError   written by a newer localcache; left untouched
     │    ├── StoreMismatchError   the file belongs to another provider/space/environment
     │    ├── StoreCorruptError    the file is damaged (never deleted; moved aside on request)
     │    └── StoreBusyError       another sync holds the file
     ├── SyncError                 talking to the CMS failed (carries status and request id)
     │    ├── AuthenticationError  the access token was refused (401/403)
     │    ├── TokenRejectedError   the continuation token was refused (needs a fresh sync)
     │    └── PageError            a response could not be understood; nothing of it applied
     ├── SnapshotError             a snapshot could not be created or installed
     ├── QueryError                a malformed query: unknown operator, bad where/order_by
     └── AssetError                asset files could not be downloaded or kept: the disk is
                                   full, the asset directory cannot be written

Foreign errors (requests, sqlite3, json) are mapped to these types where they are caught, in
``providers/http.py`` (network), ``providers/`` (wire format), ``store/`` (SQLite) and
``assets/fetch.py`` (asset downloads: network and disk). Messages name
the operation, the resource and what to do next. They never contain an access token: callers
pass only the pieces of a request that are safe to show.
"""

from __future__ import annotations

__all__ = [
    "AssetError",
    "AuthenticationError",
    "ConfigurationError",
    "LocalCacheError",
    "PageError",
    "QueryError",
    "SchemaVersionError",
    "SnapshotError",
    "StoreBusyError",
    "StoreCorruptError",
    "StoreError",
    "StoreMismatchError",
    "SyncError",
    "TokenRejectedError",
]


class LocalCacheError(Exception):
    """Base of every error localcache raises on purpose."""


class ConfigurationError(LocalCacheError):
    """The library was set up with arguments it cannot work with."""


class StoreError(LocalCacheError):
    """The on-device store could not be opened, read or written."""


class SchemaVersionError(StoreError):
    """The store was written by a newer schema; it is refused and never altered."""


class StoreMismatchError(StoreError):
    """The store holds another provider, space or environment than the one configured."""


class StoreCorruptError(StoreError):
    """The store file is damaged. It is never deleted: open the Cache with
    ``rebuild_if_corrupt=True`` to move it aside and rebuild with a fresh sync."""


class StoreBusyError(StoreError):
    """Another sync holds the store; two syncs never interleave."""


class SyncError(LocalCacheError):
    """Talking to the CMS failed. The store stays at the last committed page.

    ``status`` is the HTTP status when there was a response, ``request_id`` the vendor's
    request id when it sent one (quote it to the vendor's support).
    """

    def __init__(
        self, message: str, *, status: int | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class AuthenticationError(SyncError):
    """The CMS refused the access token."""


class TokenRejectedError(SyncError):
    """The CMS refused the stored continuation token; a fresh initial sync is needed."""


class PageError(SyncError):
    """A sync response could not be understood. Nothing from that page was applied."""

    def __init__(
        self,
        message: str,
        *,
        page: int | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.page = page


class SnapshotError(LocalCacheError):
    """A snapshot could not be created, verified or installed."""


class QueryError(LocalCacheError):
    """A read query was malformed: an unknown operator or sys key, a value of the wrong kind,
    a bad ``order_by`` entry, a negative limit or offset. The message names the key."""


class AssetError(LocalCacheError):
    """Asset files could not be downloaded or kept (docs/assets.md): the disk is full, or the
    asset directory cannot be written. The store and the files already on disk are unharmed;
    the message says what to do (free space, fix the directory's permissions)."""
