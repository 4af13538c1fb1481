"""What a provider is, seen from the sync engine: the :class:`Provider` protocol.

A provider knows HTTP and one vendor's wire format and nothing of the store. It turns each
response into a :class:`~localcache.model.Page` of normalized deltas (``localcache/model.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import AuthenticationError, ConfigurationError, SyncError
from ..model import ContentTypeInfo, ContinuationToken, LocaleInfo, Page, StoreScope

__all__ = [
    "ListsContentTypes", "Provider", "check_fallbacks", "listing_unavailable", "require_text",
]


@runtime_checkable
class Provider(Protocol):
    """A vendor's sync protocol, seen from the engine."""

    @property
    def scope(self) -> StoreScope: ...

    def fetch_locales(self) -> list[LocaleInfo] | None:
        """The space's locales with their fallbacks, read from the vendor (never guessed).

        None when the vendor does not list them: the store then learns the codes the records
        use, without fallbacks."""
        ...

    def pages(self, token: ContinuationToken | None) -> Iterator[Page]:
        """Yield pages from ``token`` (``None``: an initial sync) until a sync token arrives."""
        ...

    def close(self) -> None: ...


class ListsContentTypes(Protocol):
    """An optional part of a provider (the three built in have it): an app's own provider
    without it still syncs, and the store keeps no content types for it.

    A provider whose class sets ``concurrent_requests = True`` has, in an initial sync,
    :meth:`fetch_content_types` called on a thread of its own while :meth:`Provider.pages`
    asks for the first page (a round trip less at the start); without it, before."""

    def fetch_content_types(self) -> list[ContentTypeInfo] | None:
        """The content type definitions as the vendor lists them now (the whole set).

        None when the vendor does not list them: the store keeps what it has."""
        ...


def require_text(value: Any, message: str) -> str:
    """A provider's required setting: a non-empty string, or a ConfigurationError."""
    if not value or not isinstance(value, str):
        raise ConfigurationError(message)
    return value


def check_fallbacks(fallbacks: Any, vendor: str) -> dict[str, str]:
    """A ``fallbacks=`` setting: locale code -> the code it falls back to, both non-empty
    strings; a ConfigurationError naming the bad entry otherwise. A cycle is allowed: it ends
    the chain, as it does for locales the vendor lists."""
    if fallbacks is None:
        return {}
    if not isinstance(fallbacks, Mapping):
        raise ConfigurationError(
            f"{vendor} fallbacks must map a locale code to the code it falls back to, "
            f"e.g. {{'fr-ca': 'fr-fr'}}, not {type(fallbacks).__name__}")
    checked: dict[str, str] = {}
    for code, fallback in fallbacks.items():
        if not isinstance(code, str) or not code.strip() or not isinstance(fallback, str) \
                or not fallback.strip():
            raise ConfigurationError(
                f"{vendor} fallbacks entry {code!r}: {fallback!r} is not a locale code mapped "
                "to a locale code (two non-empty strings)")
        checked[code] = fallback
    return checked


def listing_unavailable(exc: SyncError) -> bool:
    """True when a metadata listing (content types) was refused for a reason a sync can live
    with: a 4xx other than authentication. The sync then keeps the definitions it stored and
    goes on with the content; a bad credential, a server error or a network failure still
    stops it, as it would stop the content's own requests."""
    return (not isinstance(exc, AuthenticationError) and exc.status is not None
            and 400 <= exc.status < 500 and exc.status != 429)
