"""File names for asset files: from the asset id and a content hash, never from a name the CMS
supplies.

A file name the CMS sends (``fileName``, ``filename``, ``name``) can be anything: ``../../x``,
``CON`` (a device on Windows), 10,000 characters, a NUL. None of it reaches the file system:
a name here is the asset id, reduced to ``[A-Za-z0-9-]`` and cut short (for a person looking
at the directory), then ``_`` and a hash of the exact id and the file's version (so two ids
that reduce alike never share a file, and a changed file gets a new name), then an extension
chosen from the MIME type. The version is a hash of the URL (vendors put a digest of the upload
in it), size, checksum and variant, so locales that share one file (the usual case) share it
on disk too. Names are at most 82 characters, and the part before the first dot is never a
Windows device name (it always holds ``_`` and 24 hex digits).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re

from .policy import Variant

__all__ = ["PART", "extension", "file_name", "is_our_file", "part_name", "version_key"]

PART = ".part"
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")
_OURS = re.compile(r"^[A-Za-z0-9-]*_[0-9a-f]{24}\.[a-z0-9]{1,8}(\.part)?$")
_EXTENSIONS = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
    "image/avif": ".avif", "image/svg+xml": ".svg", "image/tiff": ".tif", "image/bmp": ".bmp",
    "image/x-icon": ".ico", "application/pdf": ".pdf", "video/mp4": ".mp4",
    "video/webm": ".webm", "video/quicktime": ".mov", "audio/mpeg": ".mp3",
    "application/zip": ".zip", "text/plain": ".txt", "application/json": ".json",
}
# Image API output formats (Contentful fm, Contentstack format, Kontent.ai fm).
_FORMATS = {"jpg": ".jpg", "jpeg": ".jpg", "pjpg": ".jpg", "png": ".png", "png8": ".png",
            "webp": ".webp", "avif": ".avif", "gif": ".gif", "auto": ".img"}
_FORMAT_PARAMS = ("fm", "format")


def _safe(text: str, limit: int) -> str:
    return _UNSAFE.sub("-", text).strip("-")[:limit]


def version_key(url: str, size: int | None, checksum: str | None, variant: Variant) -> str:
    """What identifies one version of a file: the URL the vendor gives (it carries a digest
    of the upload; taken before ``asset_base_url``, so a mirror or the emulator changes no
    name), the size and checksum the record gives, and the variant asked for."""
    text = "\0".join([url, str(size), checksum or "", repr(variant)])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def extension(content_type: str | None, variant: Variant = ()) -> str:
    """``.jpg``, ``.pdf`` ...: from the variant's output format, else the MIME type; ``.bin``
    when neither says."""
    for name, value in variant:
        if name in _FORMAT_PARAMS and value.lower() in _FORMATS:
            return _FORMATS[value.lower()]
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    found = _EXTENSIONS.get(kind) or (mimetypes.guess_extension(kind) if kind else None)
    if found and re.fullmatch(r"\.[a-z0-9]{1,8}", found):
        return found
    return ".bin"


def file_name(asset_id: str, version: str, content_type: str | None,
              variant: Variant = ()) -> str:
    """``<id>_<hash>.<ext>``: a readable part for people, the hash for uniqueness."""
    digest = hashlib.sha256("\0".join([asset_id, version]).encode(
        "utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{_safe(asset_id, 48)}_{digest}{extension(content_type, variant)}"


def part_name(name: str) -> str:
    """The temporary name a file is written under until it is whole, verified and fsynced."""
    return name + PART


def is_our_file(name: str) -> bool:
    """Whether ``name`` (in the asset directory) is a file or partial file this package made;
    anything else there is left alone."""
    return bool(_OURS.match(name))
