"""Transport-neutral request/response types shared by the server and the vendor protocols.

The HTTP plumbing (sockets, keep-alive, truncation) lives in ``server.py``; each vendor protocol
is a plain object mapping a :class:`Request` to a :class:`Response`.  Keeping this seam small
means another CMS's sync protocol can be mounted next to Contentful's without touching the
socket code, and protocol logic can be unit-tested without a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["App", "Request", "Response"]


@dataclass(frozen=True)
class Request:
    """An HTTP request as a vendor protocol needs it.

    ``headers`` keys are lower-cased.  ``base_url`` is scheme://host[:port] as the client
    addressed us, so absolute URLs we hand back (next page links) reach this same server.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    base_url: str

    def param(self, name: str) -> str | None:
        """First value of query parameter ``name``, or None when absent."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    """What to send back.

    ``truncate`` asks the server to announce the full Content-Length, write only half the body
    and then drop the connection: the shape of a connection cut mid-transfer.
    """

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    truncate: bool = False


class App(Protocol):
    """A vendor protocol mounted on the emulator's HTTP server."""

    def handle(self, request: Request) -> Response:
        """Answer one request; must be safe to call from many server threads at once."""
        ...
