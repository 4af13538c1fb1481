"""A local, faithful Contentful Content Delivery API (sync protocol) with switchable faults.

Tests, benchmarks and demos drive the library against :class:`Emulator` over real loopback
HTTP, so what they exercise is the same code path as production: sockets, keep-alive, paging,
tokens, retries.  Mutate the :class:`Space` from any thread while it is being served.
"""

from .faults import Faults
from .generate import generate_space
from .server import Emulator
from .space import Locale, Space
from .wire import App, Request, Response

__all__ = [
    "App",
    "Emulator",
    "Faults",
    "Locale",
    "Request",
    "Response",
    "Space",
    "generate_space",
]
