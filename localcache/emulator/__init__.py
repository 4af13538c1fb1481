"""A local, faithful CMS with switchable faults: Contentful (:class:`Space`), Contentstack
(:class:`Stack`) and Kontent.ai (:class:`Project`) sync and delivery protocols.

Tests, benchmarks and demos drive the library against :class:`Emulator` over real loopback
HTTP, so what they exercise is the same code path as production: sockets, keep-alive, paging,
tokens, retries.  Mutate the model from any thread while it is being served.
"""

from .editor import SpaceEditor
from .faults import Faults
from .generate import generate_space
from .project import Project
from .server import Emulator
from .space import Locale, Space
from .stack import Stack
from .wire import App, Request, Response

__all__ = [
    "App",
    "Emulator",
    "Faults",
    "Locale",
    "Project",
    "Request",
    "Response",
    "Space",
    "SpaceEditor",
    "Stack",
    "generate_space",
]
