"""What a provider is, seen from the sync engine: the :class:`Provider` protocol.

A provider knows HTTP and one vendor's wire format and nothing of the store. It turns each
response into a :class:`~localcache.model.Page` of normalized deltas (``localcache/model.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..model import ContinuationToken, LocaleInfo, Page, StoreScope

__all__ = ["Provider", "require_text"]


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


def require_text(value: Any, message: str) -> str:
    """A provider's required setting: a non-empty string, or a ConfigurationError."""
    if not value or not isinstance(value, str):
        raise ConfigurationError(message)
    return value
