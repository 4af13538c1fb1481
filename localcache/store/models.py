"""The store's tables, as peewee models.

Every record keeps the document the CMS sent (``raw``: for Contentful the CDA item, byte for byte
after JSON normalization) beside the normalized columns, so nothing is lost and a later schema
can re-derive columns without a re-sync. ``fields`` is a virtual column generated from ``raw``:
SQL can read it, and writing a page costs one JSON encoding per record, not two.

Models are built per store by :func:`bind_models`, so two stores can be open in one process
(and on several threads) without touching each other's class state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peewee import (
    SQL,
    BooleanField,
    CompositeKey,
    Database,
    ForeignKeyField,
    IntegerField,
    Model,
    Node,
    TextField,
)

__all__ = ["BoundModels", "bind_models"]

_FIELDS_FROM_RAW: list[Node] = [SQL("GENERATED ALWAYS AS (json_extract(raw, '$.fields')) VIRTUAL")]


@dataclass(frozen=True)
class BoundModels:
    """The models of one store's database."""

    entry: Any
    asset: Any
    entry_type: Any
    link: Any
    locale: Any
    sync_state: Any
    rebuild_entry: Any
    rebuild_asset: Any

    def all(self) -> list[Any]:
        return [self.entry, self.asset, self.entry_type, self.link, self.locale, self.sync_state,
                self.rebuild_entry, self.rebuild_asset]


def bind_models(db: Database) -> BoundModels:
    """The store's tables, bound to ``db``."""

    class Base(Model):
        class Meta:
            database = db

    class AssetRecord(Base):
        id = TextField(primary_key=True)
        revision = IntegerField()
        created_at = TextField(null=True)
        updated_at = TextField(null=True)
        document = TextField(column_name="raw")
        fields = TextField(null=True, constraints=_FIELDS_FROM_RAW)

        class Meta:
            table_name = "assets"

    class EntryRecord(AssetRecord):
        """An asset's columns, and the content type an entry is of."""

        # Indexed by (content_type, id), made by the schema's migrations (store/schema.py).
        content_type = TextField()

        class Meta:
            table_name = "entries"

    class EntryTypeIndex(Base):
        """id → content type, kept after deletion: a DeletedEntry names no content type."""

        id = TextField(primary_key=True)
        content_type = TextField()

        class Meta:
            table_name = "entry_types"
            without_rowid = True

    class LinkRecord(Base):
        """One link inside an entry's fields; rewritten whenever the entry changes."""

        source = ForeignKeyField(EntryRecord, column_name="source_id", on_delete="CASCADE")
        field = TextField()
        locale = TextField()
        position = IntegerField()
        target_type = TextField()
        target_id = TextField()

        class Meta:
            table_name = "links"
            primary_key = CompositeKey("source", "field", "locale", "position")
            without_rowid = True

    class LocaleRecord(Base):
        code = TextField(primary_key=True)
        name = TextField(default="")
        is_default = BooleanField(default=False)
        fallback = TextField(null=True)
        optional = BooleanField(default=False)

        class Meta:
            table_name = "locales"

    class SyncStateRecord(Base):
        """Key/value state of the sync: the continuation token and what it belongs to."""

        key = TextField(primary_key=True)
        value = TextField(null=True)

        class Meta:
            table_name = "sync_state"

    # A fresh initial sync is built in these, beside the live data, then swapped in.
    class RebuildEntry(EntryRecord):
        class Meta:
            table_name = "rebuild_entries"

    class RebuildAsset(AssetRecord):
        class Meta:
            table_name = "rebuild_assets"

    return BoundModels(
        entry=EntryRecord,
        asset=AssetRecord,
        entry_type=EntryTypeIndex,
        link=LinkRecord,
        locale=LocaleRecord,
        sync_state=SyncStateRecord,
        rebuild_entry=RebuildEntry,
        rebuild_asset=RebuildAsset,
    )
