"""Helpers for the asset file tests: spaces with files, caches with a policy, whole-file checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from support import TOKEN, make_space

from localcache.emulator.files import contentful_file, file_bytes

SPACE = "testspace"


def publish(space: Any, asset_id: str, size: int = 50_000, *, name: str | None = None,
            content_type: str = "image/png", version: int = 1,
            locales: tuple[str, ...] = ("en-US",)) -> dict[str, Any]:
    """Publish an asset whose file the emulator serves; returns the file value."""
    file = contentful_file(space.space_id, asset_id, name or f"{asset_id}.png", size,
                           content_type, version)
    space.publish_asset(asset_id, {"title": {"en-US": asset_id},
                                   "file": {code: file for code in locales}})
    return file


def space_with_files(count: int, size: int = 50_000) -> Any:
    space = make_space(SPACE)
    for number in range(count):
        publish(space, f"asset{number}", size + number)
    return space


def expected_bytes(file: dict[str, Any]) -> bytes:
    """What the emulator serves for a Contentful file value."""
    return file_bytes(urlsplit("https:" + file["url"]).path, file["details"]["size"])


def make_asset_cache(emu: Any, tmp: Path, **policy: Any) -> Any:
    from localcache import AssetPolicy, Cache, Contentful

    policy.setdefault("directory", tmp / "assets")
    provider = Contentful(emu.space.space_id, TOKEN, emu.space.environment,
                          base_url=emu.base_url, asset_base_url=emu.asset_base_url)
    return Cache(provider, path=tmp / "store.sqlite3", assets=AssetPolicy(**policy))


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def assert_every_file_whole(space: Any, directory: Path) -> int:
    """Every final file in ``directory`` holds exactly the bytes of some file the space
    published at some point (here: now); returns how many there are."""
    served = {}
    for item in space.published_assets().values():
        for file in item["fields"].get("file", {}).values():
            served[expected_bytes(file)] = True
    count = 0
    for name in files_in(directory):
        if name.endswith(".part"):
            continue
        data = (directory / name).read_bytes()
        assert data in served, f"{name} is not a whole file ({len(data)} bytes)"
        count += 1
    return count


def under(directory: Path, path: Path) -> bool:
    return os.path.commonpath([directory.resolve(), path.resolve()]) == str(directory.resolve())
