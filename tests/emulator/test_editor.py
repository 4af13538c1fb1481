"""SpaceEditor: the example apps' self-editing space makes every kind of edit, and a cache
that syncs after each edit stays equal to the space."""

from __future__ import annotations

from pathlib import Path

from localcache import Cache, Contentful
from localcache.emulator import Emulator, SpaceEditor, generate_space


def test_editor_makes_each_kind_of_edit_and_the_cache_follows(tmp_path: Path) -> None:
    space = generate_space(entries=30, assets=4, seed=3)
    editor = SpaceEditor(space, seed=5)
    with Emulator(space, access_token="t") as emu, Cache(
            Contentful(space.space_id, "t", base_url=emu.base_url),
            path=tmp_path / "s.sqlite3") as cache:
        cache.sync()
        kinds = set()
        for _ in range(60):
            kinds.add(editor.step().split()[0])
            cache.sync()
        assert kinds == {"retitled", "rated", "published", "deleted", "renamed"}
        published = space.published_entries()
        assert sorted(r.id for r in cache.entries()) == sorted(published)
        for record in cache.entries():
            assert record.raw == published[record.id]


def test_editor_thread_edits_until_stopped() -> None:
    space = generate_space(entries=10, assets=1, seed=1)
    head = space.head
    with SpaceEditor(space, interval=0.01) as editor:
        while editor.edits < 3:
            pass
    edits = editor.edits
    assert space.head > head
    assert editor.edits == edits  # nothing after stop()
