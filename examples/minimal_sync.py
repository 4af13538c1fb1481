"""Sync a space into a local store, print what changed, then read: locale fallback, a query,
a resolved link and a full-text search.

Runs offline against the built-in emulator; pass --space/--token to use a real Contentful
space instead:

    python examples/minimal_sync.py
    python examples/minimal_sync.py --space cfexampleapi --token <delivery token>
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from localcache import Cache, ChangeSet, Contentful, signals
from localcache.emulator import Emulator, generate_space


def on_changes(sender: Any, *, changes: ChangeSet) -> None:
    print(f"page {changes.page}: {len(changes.entries_changed)} entries changed, "
          f"{len(changes.entries_deleted)} deleted, content types {sorted(changes.content_types)}")


def sync_and_show(provider: Contentful, path: Path) -> None:
    with Cache(provider, path=path) as cache:
        with signals.changes_committed.connected_to(on_changes, sender=cache):
            print(cache.sync().summary())
        first = next(iter(cache.entries(limit=1)), None)
        if first is None:
            return
        for locale in cache.locales():
            print(f"{first.id} in {locale.code}: {first.field('title', locale.code)!r}")
        show_reads(cache, first.content_type)


def show_reads(cache: Cache, content_type: str | None) -> None:
    """Queries, links and search: what a list screen, a detail screen and a search box do."""
    kind = cache.content_type(content_type) if content_type else None
    title = kind.display_field if kind is not None and kind.display_field else "title"
    print(f"{cache.count(content_type)} entries of type {content_type!r}; "
          f"rows are titled by {title!r}")
    for record in cache.entries(content_type, order_by=["-sys.updatedAt"], limit=3):
        print(f"  latest: {record.id} {record.field(title)!r}")
    detail = cache.entry(next(iter(cache.entries(content_type, limit=1))).id, include=1)
    if detail is not None:
        for name in detail.fields:
            linked = detail.resolve(name)  # a Record, a list of them, or None
            if linked:
                shown = linked if isinstance(linked, list) else [linked]
                print(f"  {detail.id}.{name} links to {[r.id for r in shown]}")
    word = str(detail.field(title) if detail is not None else "").split()[:1]
    if word:
        for hit in cache.search(word[0], limit=3):
            print(f"  search {word[0]!r}: {hit.id} ({hit.score:.2f}) {hit.snippet}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space")
    parser.add_argument("--token")
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.db or Path(scratch) / "example.sqlite3"
        if args.space and args.token:
            sync_and_show(Contentful(args.space, args.token), path)
            return
        space = generate_space(entries=120, assets=10)
        with Emulator(space, access_token="example-token") as emulator:
            sync_and_show(Contentful(space.space_id, "example-token",
                                     base_url=emulator.base_url), path)


if __name__ == "__main__":
    main()
