"""``AssetPolicy``: which asset files an app keeps on disk, in which form, and how much of them.

A policy is plain data, checked when it is made (a wrong setting fails at ``AssetPolicy(...)``
with a ConfigurationError naming it, not in the middle of a download), and stored in the store
beside the bookkeeping, so ``localcache assets download --db`` does what the app would do.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["DEFAULT_WORKERS", "MAX_WORKERS", "AssetPolicy", "Variant"]

DEFAULT_WORKERS = 8
MAX_WORKERS = 64

Variant = tuple[tuple[str, str], ...]
"""Image API parameters, sorted by name: ``(("fm", "webp"), ("q", "80"), ("w", "1200"))``."""


def _texts(value: Any, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(
            isinstance(item, str) and item.strip() for item in value):
        raise ConfigurationError(
            f"AssetPolicy {what} must be None or a list of non-empty strings, not {value!r}")
    return tuple(item.strip() for item in value)


def _size(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"AssetPolicy {what} must be None or a whole number of bytes >= 0, not {value!r}")
    return value


def _param(name: Any, value: Any, pattern: str) -> tuple[str, str]:
    ok = isinstance(name, str) and name.strip() and (
        isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                   and math.isfinite(value)))
    if not ok:
        raise ConfigurationError(
            f"AssetPolicy variants[{pattern!r}] maps image API parameter names to strings or "
            f"numbers; {name!r}: {value!r} is not one")
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return str(name).strip(), text


def _variants(value: Any) -> dict[str, Variant]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            "AssetPolicy variants must map a MIME pattern to image API parameters, e.g. "
            f"{{'image/*': {{'w': 1200, 'fm': 'webp'}}}}, not {type(value).__name__}")
    found: dict[str, Variant] = {}
    for pattern, params in value.items():
        if not isinstance(pattern, str) or not pattern.strip() or not isinstance(params,
                                                                                 Mapping):
            raise ConfigurationError(
                f"AssetPolicy variants entry {pattern!r}: {params!r} is not a MIME pattern "
                "mapped to image API parameters")
        pairs = sorted(_param(name, item, pattern) for name, item in params.items())
        if pairs:
            found[pattern.strip().lower()] = tuple(pairs)
    return found


@dataclass(frozen=True)
class AssetPolicy:
    """Which asset files to keep on disk (``Cache(..., assets=AssetPolicy(...))``).

    - ``locales``: the locales to fetch; None, every locale an asset has a file in;
    - ``mime_types``: patterns such as ``"image/*"`` or ``"application/pdf"``; None, all.
      A file whose record names no type matches only None;
    - ``max_file_size``: bytes; a larger file is not fetched and is reported as skipped;
    - ``budget_bytes``: above this, the least recently used files are evicted (pinned ones
      never); None, no limit;
    - ``variants``: MIME pattern → the vendor's image API parameters (``w``/``h``/``fm``/``q``
      or ``width``/``height``/``format``/``quality``, translated per vendor): such a file is
      fetched transformed, instead of the original. The first matching pattern wins;
    - ``workers``: downloads at once (1-64);
    - ``directory``: where the files live; None, ``user_cache_dir(app_name)/<space>-<env>/
      assets``.
    """

    locales: Sequence[str] | None = None
    mime_types: Sequence[str] | None = None
    max_file_size: int | None = None
    budget_bytes: int | None = None
    variants: Mapping[str, Mapping[str, Any]] | None = None
    workers: int = DEFAULT_WORKERS
    directory: str | Path | None = None
    _variants: dict[str, Variant] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setting = object.__setattr__
        setting(self, "locales", _texts(self.locales, "locales"))
        setting(self, "mime_types", None if self.mime_types is None else tuple(
            t.lower() for t in _texts(self.mime_types, "mime_types") or ()))
        setting(self, "max_file_size", _size(self.max_file_size, "max_file_size"))
        setting(self, "budget_bytes", _size(self.budget_bytes, "budget_bytes"))
        variants = _variants(self.variants)
        setting(self, "_variants", variants)
        setting(self, "variants", {pattern: dict(params) for pattern, params in variants.items()}
                or None)
        workers = self.workers
        if isinstance(workers, bool) or not isinstance(workers, int) \
                or not 1 <= workers <= MAX_WORKERS:
            raise ConfigurationError(
                f"AssetPolicy workers must be a whole number from 1 to {MAX_WORKERS}, "
                f"not {workers!r}")
        if self.directory is not None:
            if not isinstance(self.directory, (str, Path)) or not str(self.directory).strip():
                raise ConfigurationError(
                    f"AssetPolicy directory must be a path, not {self.directory!r}")
            setting(self, "directory", Path(self.directory).expanduser())

    # -- what is wanted ------------------------------------------------------------------------

    def wants_locale(self, locale: str | None) -> bool:
        """Whether files of ``locale`` are kept (an unlocalized file always is)."""
        return locale is None or self.locales is None or locale in self.locales

    def wants_type(self, content_type: str | None) -> bool:
        if self.mime_types is None:
            return True
        if not content_type:
            return False
        kind = content_type.split(";", 1)[0].strip().lower()
        return any(fnmatch.fnmatchcase(kind, pattern) for pattern in self.mime_types)

    def variant_for(self, content_type: str | None) -> Variant:
        """The image API parameters a file of ``content_type`` is fetched with; () for the
        original."""
        if not content_type or not self._variants:
            return ()
        kind = content_type.split(";", 1)[0].strip().lower()
        for pattern, params in self._variants.items():
            if fnmatch.fnmatchcase(kind, pattern):
                return params
        return ()

    def too_big(self, size: int | None) -> bool:
        return self.max_file_size is not None and size is not None and size > self.max_file_size

    # -- storage -------------------------------------------------------------------------------

    def to_json(self) -> str:
        """The policy as JSON, stored in the store (the directory as an absolute path)."""
        return json.dumps({
            "locales": list(self.locales) if self.locales is not None else None,
            "mime_types": list(self.mime_types) if self.mime_types is not None else None,
            "max_file_size": self.max_file_size,
            "budget_bytes": self.budget_bytes,
            "variants": self.variants,
            "workers": self.workers,
            "directory": str(self.directory) if self.directory is not None else None,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AssetPolicy:
        """A policy stored by :meth:`to_json`; ConfigurationError when it cannot be read."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return cls(**{key: data.get(key) for key in (
                "locales", "mime_types", "max_file_size", "budget_bytes", "variants",
                "directory")}, workers=data.get("workers", DEFAULT_WORKERS))
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"the asset policy stored in the store is damaged ({exc}); "
                                     "open the Cache with assets=AssetPolicy(...)") from None

    def selection_key(self) -> str:
        """What decides which files are wanted and in which form (not the budget, workers or
        directory): when it changes, the bookkeeping is reconciled with the store again."""
        return json.dumps([self.locales, self.mime_types, self.max_file_size,
                           sorted(self._variants.items())], sort_keys=True)
