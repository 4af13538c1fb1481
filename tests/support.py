"""Helpers shared by the tests: a small emulated space, a cache on it, convergence checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOKEN = "test-delivery-token"


def make_space(space_id: str = "testspace") -> Any:
    from localcache.emulator import Locale, Space

    space = Space(space_id, "master", locales=[
        Locale("en-US", default=True), Locale("de-DE", fallback="en-US"),
        Locale("de-AT", fallback="de-DE", optional=True),
    ])
    space.add_content_type("article", name="Article", fields=[
        {"id": "title", "name": "Title", "type": "Symbol", "localized": True},
        {"id": "body", "name": "Body", "type": "Text", "localized": True},
        {"id": "related", "name": "Related", "type": "Array", "localized": False,
         "items": {"type": "Link", "linkType": "Entry"}},
        {"id": "image", "name": "Image", "type": "Link", "linkType": "Asset", "localized": False},
    ], display_field="title")
    return space


def make_cache(emu: Any, path: Path, rebuild_if_corrupt: bool = False,
               **provider_args: Any) -> Any:
    from localcache import Cache, Contentful

    provider = Contentful(emu.space.space_id, TOKEN, emu.space.environment,
                          base_url=emu.base_url, **provider_args)
    return Cache(provider, path=path, rebuild_if_corrupt=rebuild_if_corrupt)


def assert_converged(cache: Any, space: Any) -> None:
    """The store holds exactly what the emulator publishes now, item for item."""
    entries = space.published_entries()
    assets = space.published_assets()
    stored_entries = {r.id: r for r in cache.entries()}
    assert sorted(stored_entries) == sorted(entries)
    for entry_id, item in entries.items():
        record = stored_entries[entry_id]
        assert record.raw == item, entry_id
        assert record.fields == item["fields"]
        assert record.revision == item["sys"]["revision"]
        assert record.content_type == item["sys"]["contentType"]["sys"]["id"]
    stored_assets = cache.stats()["assets"]
    assert stored_assets == len(assets)
    for asset_id, item in assets.items():
        record = cache.asset(asset_id)
        assert record is not None and record.raw == item, asset_id


def article(title: str, de: str | None = None, related: list[str] | None = None,
            image: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"title": {"en-US": title}, "body": {"en-US": f"Body of {title}"}}
    if de is not None:
        fields["title"]["de-DE"] = de
    if related:
        fields["related"] = {"en-US": [
            {"sys": {"type": "Link", "linkType": "Entry", "id": i}} for i in related]}
    if image:
        fields["image"] = {"en-US": {"sys": {"type": "Link", "linkType": "Asset", "id": image}}}
    return fields


def asset_fields(name: str) -> dict[str, Any]:
    return {"title": {"en-US": name}, "file": {"en-US": {
        "url": f"//assets.example/{name}.png", "fileName": f"{name}.png",
        "contentType": "image/png", "details": {"size": 100}}}}


def break_after(emulator: Any, requests: int, counts: Any = lambda path: True) -> None:
    """From the ``requests``-th request that ``counts(path)`` on, every sync request fails."""
    seen: list[str] = []

    def count(path: str, query: dict[str, list[str]]) -> None:
        if counts(path):
            seen.append(path)
            if len(seen) == requests:
                emulator.faults.server_error(times=1_000, status=502)

    emulator.faults.on_request = count


def run_program(emulator: Any, cache: Any, program: list[tuple[Any, ...]], edit: Any,
                counts: Any = lambda path: True) -> None:
    """Run a random history: edits, syncs, and syncs the server breaks off; then a final sync.
    What a broken sync committed stays, and the next sync resumes."""
    import contextlib

    from localcache import SyncError

    with SignalLedger(cache) as ledger:
        for op in program:
            if op[0] == "sync":
                cache.sync()
            elif op[0] == "broken_sync":
                break_after(emulator, op[1], counts)
                with contextlib.suppress(SyncError):
                    cache.sync()
                emulator.faults.clear()
            else:
                edit(op)
            ledger.assert_agrees()
        cache.sync()
        ledger.assert_agrees()


class SignalLedger:
    """The last per-record signal each record got: it must always agree with the store (the
    record as stored, merged; or absent after a deletion)."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.last: dict[tuple[str, str], Any] = {}  # (type, id) -> record, or None if deleted

    def __enter__(self) -> SignalLedger:
        from localcache import signals

        self._connections = [
            (signals.entry_changed, self._changed("Entry")),
            (signals.asset_changed, self._changed("Asset")),
            (signals.entry_deleted, self._deleted("Entry")),
            (signals.asset_deleted, self._deleted("Asset")),
        ]
        for signal, receiver in self._connections:
            signal.connect(receiver, sender=self.cache, weak=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signal, receiver in self._connections:
            signal.disconnect(receiver, sender=self.cache)

    def _changed(self, record_type: str) -> Any:
        def receive(sender: Any, *, id: str, record: Any) -> None:
            assert record is not None and record.id == id and record.type == record_type
            self.last[(record_type, id)] = record
        return receive

    def _deleted(self, record_type: str) -> Any:
        def receive(sender: Any, *, id: str) -> None:
            self.last[(record_type, id)] = None
        return receive

    def assert_agrees(self) -> None:
        for (record_type, record_id), record in self.last.items():
            read = self.cache.entry if record_type == "Entry" else self.cache.asset
            stored = read(record_id)
            if record is None:
                assert stored is None, f"{record_type} {record_id} signalled deleted, is stored"
            else:
                assert stored is not None, f"{record_type} {record_id} signalled, not stored"
                assert record.raw == stored.raw, f"{record_type} {record_id}: signal is stale"
                assert (record.revision, record.content_type, record.updated_at) == \
                    (stored.revision, stored.content_type, stored.updated_at)
