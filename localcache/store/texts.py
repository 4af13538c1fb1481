"""The text of an entry as the search index holds it, per locale: what :meth:`Record.field`
shows there after fallback, as plain text (HTML stripped; rich text documents of the three
vendors reduced to their text), worked out once per entry and locale chain (``TextPlan``).

The index (``search.py``) keeps no copy of it: a row's text is worked out here again, from the
stored entry, to show a snippet or to delete the row. So what this module makes of an entry
must not change without the index being built again (a schema version step that rebuilds
it), or a row would be deleted by words it was not made of.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from typing import Any

from ..model import Delta
from .query import LocaleChain

__all__ = ["PreparedTexts", "TextPlan", "TextsAhead", "entry_text", "plain_text", "plan_for"]

_HTML_TAG = re.compile(r"<[A-Za-z/!][^>]*>")
_KONTENT_TEXT = ("text", "rich_text", "url_slug", "custom")


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _html_text(value: str) -> str:
    parser = _TextOfHtml()
    parser.feed(value)
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def plain_text(value: Any) -> Iterator[str]:
    """The searchable text in one field value: strings (HTML stripped), arrays of them, rich
    text documents of the three vendors, Kontent.ai elements' values. Links, numbers,
    booleans, locations and other objects hold no searchable text. (A date is a string in all
    three vendors' JSON: it is left out by its field's declared type, see
    ``UNSEARCHED_TYPES``, not here.)"""
    if isinstance(value, str):
        yield _html_text(value) if _HTML_TAG.search(value) else value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (str, dict)):
                yield from plain_text(item)
    elif isinstance(value, dict):
        if value.get("nodeType") == "document" or value.get("type") == "doc":
            yield from _rich_text(value)
        elif value.get("type") in _KONTENT_TEXT and "name" in value:
            # A Kontent.ai element: text, rich text, URL slug; not numbers or references.
            inner = value.get("value")
            if isinstance(inner, str):
                yield from plain_text(inner)


def _rich_text(node: Any) -> Iterator[str]:
    """Text leaves of a Contentful rich-text document (``nodeType``/``content``/``value``) or
    a Contentstack JSON RTE (``type``/``children``/``text``)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            leaf = current.get("value") if current.get("nodeType") == "text" \
                else current.get("text")
            if isinstance(leaf, str) and leaf:
                yield leaf
            children = current.get("content") or current.get("children")
            if isinstance(children, list):
                stack.extend(reversed(children))
        elif isinstance(current, list):
            stack.extend(reversed(current))


def _value_text(value: Any) -> str:
    """The text of one field value in one locale, its parts on lines of their own:
    :func:`plain_text`, with the common shapes (plain strings, arrays of them, links) taken
    without walking them."""
    kind = type(value)
    if kind is str:
        return value if "<" not in value else "\n".join(plain_text(value))
    if kind is list:
        if all(type(item) is str and "<" not in item for item in value):
            return "\n".join(item for item in value if item)
    elif kind is dict:
        if "sys" in value and "nodeType" not in value and "type" not in value:
            return ""  # a link
    elif not isinstance(value, (list, dict)):
        return ""
    return "\n".join(p for p in plain_text(value) if p)


class TextPlan:
    """Which locale's value of each field an entry's text in each locale takes: the chains
    :meth:`Record.field` reads, worked out once for one :class:`LocaleChain`, and once for
    each set of locales a field has values in (most fields of a space share a few)."""

    __slots__ = ("_chains", "_sources", "_unlocalized", "_unlocalized_chains", "_unsearched",
                 "chain", "locales")

    def __init__(self, chain: LocaleChain) -> None:
        self.chain = chain
        self.locales = tuple(chain.fallbacks)
        self._chains = {code: tuple(chain.chain(code)) for code in self.locales}
        self._unlocalized_chains = {code: chain.unlocalized_chain(code)
                                    for code in self.locales}
        self._unlocalized = chain.unlocalized
        self._unsearched = chain.unsearched
        # (unlocalized, the codes a field has values in) -> (code read, locales reading it)
        self._sources: dict[tuple[bool, tuple[str, ...]],
                            tuple[tuple[str, tuple[str, ...]], ...]] = {}

    def texts(self, document: dict[str, Any], content_type: str | None) -> dict[str, str]:
        """Locale → the entry's text there (locales where it has none are left out)."""
        fields = document.get("fields")
        if not isinstance(fields, dict):
            return {}
        unlocalized = self._unlocalized.get(content_type, ()) if content_type else ()
        unsearched = self._unsearched.get(content_type, ()) if content_type else ()
        parts: dict[str, list[str]] = {code: [] for code in self.locales}
        sources = self._sources
        for name, by_locale in fields.items():
            if not isinstance(by_locale, dict) or not by_locale or name in unsearched:
                continue
            key = (name in unlocalized, tuple(by_locale))
            found = sources.get(key)
            if found is None:
                found = sources[key] = self._sources_of(*key)
            for code, readers in found:
                part = _value_text(by_locale[code])
                if part:
                    for locale in readers:
                        parts[locale].append(part)
        return {locale: "\n".join(texts) for locale, texts in parts.items() if texts}

    def _sources_of(self, unlocalized: bool, codes: tuple[str, ...]
                    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """For a field with values in ``codes``: each code some locale reads, with those
        locales (the first code of each locale's chain that has a value)."""
        chains = self._unlocalized_chains if unlocalized else self._chains
        readers: dict[str, list[str]] = {}
        for locale, chain in chains.items():
            code = next((c for c in chain if c in codes), None)
            if code is not None:
                readers.setdefault(code, []).append(locale)
        return tuple((code, tuple(locales)) for code, locales in readers.items())


class PreparedTexts:
    """The texts of one page's entries, worked out on the thread that fetched the page while
    the writer applies the page before it; found again by the identity of each entry's
    document (the one the page's changes carry)."""

    def __init__(self, plan: TextPlan) -> None:
        self.plan = plan
        self._by_document: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}

    def add_deltas(self, deltas: Iterable[Delta]) -> None:
        """Work out the texts of the entries ``deltas`` carry whole. A document that fails is
        left to the writer, which extracts it again and reports what fails there."""
        for delta in deltas:
            document = delta.document
            if delta.record_type != "Entry" or delta.deleted or delta.merges \
                    or document is None:
                continue
            with contextlib.suppress(Exception):
                texts = self.plan.texts(document, delta.content_type)
                self._by_document[id(document)] = (document, texts)

    def take(self, document: dict[str, Any]) -> dict[str, str] | None:
        found = self._by_document.pop(id(document), None)
        return found[1] if found is not None and found[0] is document else None


class TextsAhead:
    """Entries' texts extracted on the thread that fetches pages, while the writer applies the
    page before (in SQLite, with the GIL released): the writer's share of a page's index work
    is then the FTS5 inserts. One per page loop; the writer finds it through its thread.

    The fetch thread extracts with the chain the writer last indexed with; a page the chain
    changed for (or the first two pages, fetched before the writer named one) is extracted by
    the writer as before."""

    _local = threading.local()

    def __init__(self, outer: TextsAhead | None = None) -> None:
        self._plan: TextPlan | None = None
        self._outer = outer
        #: The prepared texts of the page the writer is applying now.
        self.page: PreparedTexts | None = None

    @classmethod
    def begin(cls) -> TextsAhead:
        """A page loop starts on this (the writer's) thread; one running already (a signal
        receiver that syncs another cache) gets its own back at :meth:`end`."""
        ahead = cls(getattr(cls._local, "ahead", None))
        cls._local.ahead = ahead
        return ahead

    def end(self) -> None:
        if getattr(self._local, "ahead", None) is self:
            self._local.ahead = self._outer

    def start(self) -> PreparedTexts | None:
        """On the fetch thread: where a fetched page's texts go, if the writer has named its
        chain."""
        plan = self._plan
        return PreparedTexts(plan) if plan is not None else None

    @classmethod
    def for_page(cls, chain: LocaleChain) -> PreparedTexts | None:
        """On the writer's thread, for the page it indexes with ``chain``: the texts prepared
        with that chain, if any; the next pages are prepared with it."""
        ahead: TextsAhead | None = getattr(cls._local, "ahead", None)
        if ahead is None:
            return None
        plan = ahead._plan
        plan = ahead._plan = plan_for(chain, plan)
        page = ahead.page
        return page if page is not None and page.plan is plan else None


def plan_for(chain: LocaleChain, plan: TextPlan | None) -> TextPlan:
    """``plan`` where it was worked out for ``chain`` (the same object), else a new one."""
    return plan if plan is not None and plan.chain is chain else TextPlan(chain)


def entry_text(plan: TextPlan, document: dict[str, Any], content_type: str | None,
               locale: str) -> str:
    """An entry's text in ``locale``, as its row in the index was made of (for a snippet)."""
    return plan.texts(document, content_type).get(locale, "")
