"""What a provider says about one file of an asset: the vocabulary providers and the asset
downloader share (like ``localcache/model.py``, it imports nothing else of the package)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

__all__ = ["AssetFile", "ImageParams", "absolute_url", "rebase_url", "with_image_params"]

ImageParams = Sequence[tuple[str, str]]
"""Image API parameters as (name, value) pairs, in the order they are sent."""


@dataclass(frozen=True, slots=True)
class AssetFile:
    """One downloadable file of an asset, in one locale.

    ``locale`` is None where the vendor does not localize the binary (a Kontent.ai asset is
    the same file in every language). ``url`` is absolute (``https:`` added to Contentful's
    protocol-relative URLs; the host rewritten by the provider's ``asset_base_url``).
    ``size`` and ``content_type`` are what the record says, None when it says nothing;
    ``checksum`` is ``"md5:<hex>"`` or ``"sha256:<hex>"`` where the vendor gives one.
    ``name`` is the vendor's file name: shown to people, never used for a path. ``origin``
    is the URL as the vendor gave it (absolute), before ``asset_base_url``: what identifies the
    file's version wherever it is fetched from.
    """

    asset_id: str
    locale: str | None
    url: str
    size: int | None = None
    content_type: str | None = None
    checksum: str | None = None
    name: str = ""
    origin: str = ""


def absolute_url(url: str) -> str:
    """``https:`` for a protocol-relative URL (Contentful's ``//images.ctfassets.net/...``)."""
    return "https:" + url if url.startswith("//") else url


def rebase_url(url: str, base: str | None) -> str:
    """``url`` with its scheme and host replaced by ``base``'s, and ``base``'s path put in
    front of its own: ``rebase_url("https://cdn.example/a/b.png", "http://127.0.0.1:8/files")``
    is ``"http://127.0.0.1:8/files/a/b.png"``. ``base`` None leaves ``url`` as it is."""
    url = absolute_url(url)
    if not base:
        return url
    parts, root = urlsplit(url), urlsplit(base)
    return urlunsplit((root.scheme, root.netloc, root.path.rstrip("/") + parts.path,
                       parts.query, ""))


def with_image_params(url: str, params: ImageParams, names: Mapping[str, str]) -> str:
    """``url`` with image API ``params`` added to its query, each name translated through
    ``names`` (the vendor's spelling of ``w``, ``width`` ...); other names go as they are."""
    if not params:
        return url
    parts = urlsplit(url)
    query = urlencode([(names.get(name, name), value) for name, value in params])
    joined = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))
