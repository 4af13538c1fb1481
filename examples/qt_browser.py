"""A Qt browser of a localcache store: entries by content type, a detail pane with resolved
links, search, locales, the sync status, and rows that change while you watch.

By default it needs no account: the built-in emulator serves a generated space that a
SpaceEditor edits every few seconds, and an AutoSync brings the edits in (rows that just
changed are highlighted).

    python examples/qt_browser.py
    python examples/qt_browser.py --space SPACE_ID --token DELIVERY_TOKEN [--environment master]
    python examples/qt_browser.py --vendor contentstack --api-key KEY --delivery-token TOKEN \\
        --environment production [--region eu]
    python examples/qt_browser.py --vendor kontent --project-id ENVIRONMENT_ID [--api-key KEY]
    python examples/qt_browser.py --screenshot docs/qt_browser.png --after 8

Everything the widgets show comes from the Cache on the GUI thread; the sync runs on the
AutoSync's thread and reaches the widgets only through QtSignals and the list model (see
docs/ui.md).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QIdentityProxyModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from localcache import (
    AutoSync,
    Cache,
    ChangeSet,
    Contentful,
    Contentstack,
    Kontent,
    LocalCacheError,
    Record,
    SyncResult,
    SyncStatus,
)
from localcache.emulator import Emulator, SpaceEditor, generate_space
from localcache.qt import ID_ROLE, EntryListModel, QtSignals

DEMO_TOKEN = "qt-browser-token"
SORTS = {"Recently updated": "-sys.updatedAt", "Title": None, "Id": "sys.id"}
GLOW_SECONDS = 6.0  # how long a changed row stays highlighted


class Glow(QIdentityProxyModel):
    """The list model, with the rows that changed lately on a highlighted background."""

    def __init__(self, source: EntryListModel) -> None:
        super().__init__()
        self.setSourceModel(source)
        self.source = source
        self.changed_at: dict[str, float] = {}
        self._fade = QTimer(self)
        self._fade.timeout.connect(self._expire)
        self._fade.start(500)

    def mark(self, record_id: str) -> None:
        self.changed_at[record_id] = time.monotonic()
        self._refresh(record_id)

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.BackgroundRole:
            changed = self.changed_at.get(super().data(index, ID_ROLE))
            if changed is not None:
                strength = max(0.0, 1 - (time.monotonic() - changed) / GLOW_SECONDS)
                return QColor(255, 236, 140, int(60 + 160 * strength))
        return super().data(index, role)

    def _expire(self) -> None:
        now = time.monotonic()
        for record_id, changed in list(self.changed_at.items()):
            if now - changed > GLOW_SECONDS:
                del self.changed_at[record_id]
            self._refresh(record_id)

    def _refresh(self, record_id: str) -> None:
        row = self.source.row_of(record_id)
        if row is not None:
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.BackgroundRole])


class Browser(QMainWindow):
    def __init__(self, cache: Cache, title: str, interval: float) -> None:
        super().__init__()
        self.cache = cache
        self.setWindowTitle(f"localcache - {title}")
        self.signals = QtSignals(cache, parent=self)
        self.model = EntryListModel(cache, order_by=SORTS["Recently updated"], parent=self)
        self.glow = Glow(self.model)
        self.current: str | None = None
        self.chose_type = False
        self.loading = False  # an initial sync: every row is new, none is highlighted
        self._build()
        self._connect()
        self.refresh_choices()
        # Started once everything listens: a signal sent before a slot is connected is lost.
        self.auto: AutoSync = cache.start_auto_sync(interval=interval)
        self.sync_now.clicked.connect(self.auto.sync_now)
        self._countdown = QTimer(self)
        self._countdown.timeout.connect(lambda: self.show_status(self.auto.status))
        self._countdown.start(1000)
        self.show_status(self.auto.status)

    # -- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.types, self.locales, self.sort = QComboBox(), QComboBox(), QComboBox()
        for combo in (self.types, self.locales, self.sort):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.sort.addItems(list(SORTS))
        self.search = QLineEdit(placeholderText="Search (every word, as you type)")
        self.search.setClearButtonEnabled(True)
        bar = QHBoxLayout()
        for label, widget in (("Content type", self.types), ("Sort", self.sort),
                              ("Locale", self.locales)):
            bar.addWidget(QLabel(label))
            bar.addWidget(widget)
        bar.addWidget(self.search, 1)

        self.list = QListView()
        # A long live list: rows of one height, laid out in batches (docs/ui.md).
        self.list.setUniformItemSizes(True)
        self.list.setLayoutMode(QListView.LayoutMode.Batched)
        self.list.setModel(self.glow)
        self.hits = QListWidget()
        self.pages = QStackedWidget()
        self.pages.addWidget(self.list)
        self.pages.addWidget(self.hits)
        self.count = QLabel()
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.count)
        column.addWidget(self.pages)
        self.detail = QTextBrowser(openLinks=False)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.detail)
        splitter.setSizes([420, 760])

        self.status = QLabel()
        self.activity = QLabel()
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setFormat("%v / %m items")
        self.sync_now = QPushButton("Sync now")
        footer = QHBoxLayout()
        footer.addWidget(self.status)
        footer.addStretch(1)
        footer.addWidget(self.activity)
        footer.addWidget(self.progress)
        footer.addWidget(self.sync_now)

        central = QWidget()
        page = QVBoxLayout(central)
        page.addLayout(bar)
        page.addWidget(splitter, 1)
        page.addLayout(footer)
        self.setCentralWidget(central)
        self.resize(1200, 760)

    def _connect(self) -> None:
        self.types.activated.connect(self.on_type_chosen)
        self.sort.currentTextChanged.connect(lambda _: self.show_query())
        self.locales.activated.connect(self.on_locale_chosen)
        self._search_later = QTimer(self, singleShot=True, interval=250)
        self._search_later.timeout.connect(self.run_search)
        self.search.textChanged.connect(lambda _: self._search_later.start())
        self.list.selectionModel().currentChanged.connect(
            lambda index, _: self.show_record(index.data(ID_ROLE)))
        self.hits.currentItemChanged.connect(
            lambda item, _: item is not None and self.show_record(
                item.data(Qt.ItemDataRole.UserRole)))
        self.detail.anchorClicked.connect(lambda url: self.show_record(url.path()))
        self.model.rowsInserted.connect(lambda *_: self.select_first())
        self.model.modelReset.connect(self.select_first)
        s = self.signals
        s.syncStatusChanged.connect(self.show_status)
        s.syncStarted.connect(self.on_started)
        s.syncProgress.connect(self.on_progress)
        s.syncFinished.connect(self.on_finished)
        s.syncFailed.connect(lambda error: self.activity.setText(f"Sync failed: {error}"))
        s.changesCommitted.connect(self.on_changes)
        s.entryChanged.connect(self.on_entry_changed)
        s.entryDeleted.connect(lambda record_id: self.on_entry_changed(record_id, gone=True))

    # -- choices: content types, locales, sort --------------------------------------------------

    def refresh_choices(self) -> None:
        """Content types and locales as the store knows them now (the first page brings
        them)."""
        types = [("All types", None)] + [(t.name or t.id, t.id)
                                         for t in self.cache.content_types()]
        if [self.types.itemData(i) for i in range(self.types.count())] != [t for _, t in types]:
            chosen = self.model.content_type
            self.types.clear()
            for name, type_id in types:
                self.types.addItem(name, type_id)
            self.types.setCurrentIndex(max(0, self.types.findData(chosen)))
            if not self.chose_type and len(types) > 1:
                self.types.setCurrentIndex(1)  # the first content type, until one is chosen
                self.show_query()
        locales = self.cache.locales()
        if self.locales.count() != len(locales):
            self.locales.clear()
            for locale in locales:
                self.locales.addItem(locale.code, locale.code)
                self.locales.setItemData(self.locales.count() - 1, locale.name,
                                         Qt.ItemDataRole.ToolTipRole)
            default = next((loc.code for loc in locales if loc.default), None)
            self.locales.setCurrentIndex(max(0, self.locales.findData(
                self.model.locale or default)))

    def on_type_chosen(self, _: int) -> None:
        self.chose_type = True
        self.show_query()

    def show_query(self) -> None:
        content_type = self.types.currentData()
        order = SORTS[self.sort.currentText()]
        if order is None:  # by the content type's display field, in the model's locale
            info = self.cache.content_type(content_type) if content_type else None
            order = info.display_field if info and info.display_field else "sys.id"
        self.model.set_query(content_type, order_by=[order])
        self.show_count()
        self.run_search()

    def on_locale_chosen(self, _: int) -> None:
        self.model.set_locale(self.locales.currentData())
        self.run_search()
        self.show_record(self.current)

    # -- rows, search and the detail pane -------------------------------------------------------

    def select_first(self) -> None:
        if self.current is None and self.model.rowCount() and self.pages.currentIndex() == 0:
            self.list.setCurrentIndex(self.glow.index(0, 0))

    def show_count(self) -> None:
        content_type = self.types.currentData()
        count = self.cache.count(content_type)
        what = self.types.currentText() if content_type else "All types"
        self.count.setText(f"{what}: {count:,} {'entry' if count == 1 else 'entries'}")

    def run_search(self) -> None:
        text = self.search.text().strip()
        self.pages.setCurrentIndex(1 if text else 0)
        if not text:
            return
        self.hits.clear()
        try:
            hits = self.cache.search(text, locale=self.model.locale,
                                     content_type=self.types.currentData(), limit=50)
        except LocalCacheError as error:
            self.hits.addItem(str(error))
            return
        for hit in hits:
            item = QListWidgetItem(f"{self.title_of(hit.record)}\n    {hit.snippet}")
            item.setData(Qt.ItemDataRole.UserRole, hit.id)
            self.hits.addItem(item)
        if not hits:
            self.hits.addItem("No entry has every word.")

    def title_of(self, record: Record) -> str:
        locale = self.model.locale
        if record.type == "Asset":
            return str(record.field("title", locale) or record.id)
        info = self.cache.content_type(record.content_type or "")
        value = record.field(info.display_field, locale) if info and info.display_field \
            else None
        return str(value) if value not in (None, "") else record.id

    def show_record(self, record_id: str | None) -> None:
        self.current = record_id
        record = self.cache.entry(record_id) if record_id else None
        if record is None:
            self.detail.setHtml("<p><i>Nothing selected.</i></p>" if record_id is None
                                else f"<p><i>{html.escape(record_id)} was deleted.</i></p>")
            return
        locale = self.model.locale or self.locales.currentData()
        info = self.cache.content_type(record.content_type or "")
        names = [f.id for f in info.fields] if info else sorted(record.fields)
        rows = []
        for name in names:
            rows.append(f"<tr><th align=left valign=top>{html.escape(name)}</th>"
                        f"<td>{self.describe(record, name, locale)}</td></tr>")
        self.detail.setHtml(
            f"<h2>{html.escape(self.title_of(record))}</h2>"
            f"<p style='color:gray'>{html.escape(info.name if info else '?')} · "
            f"{html.escape(record.id)} · revision {record.revision} · updated "
            f"{html.escape(record.updated_at or '?')} · locale {html.escape(locale or '?')}</p>"
            f"<table cellspacing=6>{''.join(rows)}</table>")

    def describe(self, record: Record, name: str, locale: str | None) -> str:
        """A field's value as HTML; links resolved to the records they point to."""
        if record.links(name, locale):
            linked = record.resolve(name, locale)
            targets = linked if isinstance(linked, list) else [linked] if linked else []
            if not targets:
                return "<i>(link to a record that is not published)</i>"
            return "<br>".join(self.link_html(t) for t in targets)
        value = record.field(name, locale)
        if value is None:
            return "<i>-</i>"
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return html.escape(text if len(text) <= 400 else text[:400] + "...")

    def link_html(self, target: Record) -> str:
        if target.type == "Asset":
            file = target.field("file", self.model.locale) or {}
            name = file.get("fileName", "") if isinstance(file, dict) else ""
            return (f"{html.escape(self.title_of(target))} "
                    f"<span style='color:gray'>(asset, {html.escape(name)})</span>")
        return (f"&#8594; <a href='entry:{html.escape(target.id)}'>"
                f"{html.escape(self.title_of(target))}</a> "
                f"<span style='color:gray'>({html.escape(target.content_type or '')})</span>")

    # -- what the sync says, on the GUI thread --------------------------------------------------

    def on_entry_changed(self, record_id: str, gone: bool = False) -> None:
        if not gone and not self.loading:
            self.glow.mark(record_id)
        if record_id == self.current:
            self.show_record(record_id)

    def on_changes(self, changes: ChangeSet) -> None:
        if changes.page == 1:
            self.refresh_choices()
        if self.current in changes.affected:  # a record it links to changed
            self.show_record(self.current)
        if not changes.empty and not self.loading:
            said = [f"{len(ids)} {what}" for ids, what in (
                (changes.entries_added, "added"), (changes.entries_updated, "updated"),
                (changes.entries_deleted, "deleted"), (changes.assets_changed, "assets changed"),
                (changes.affected, "linking entries refreshed")) if ids]
            self.activity.setText(f"{time.strftime('%H:%M:%S')} {', '.join(said)}")

    def on_started(self, initial: bool) -> None:
        self.loading = initial
        self.progress.setRange(0, 0)  # busy until a page tells how far it got
        if initial:
            self.activity.setText("Loading the whole space...")

    def on_progress(self, page: int, items: int, total: object) -> None:
        self.progress.setRange(0, total if isinstance(total, int) and total >= items else 0)
        self.progress.setValue(items)

    def on_finished(self, result: SyncResult) -> None:
        self.progress.setRange(0, max(1, result.items))
        self.progress.setValue(max(1, result.items))
        if self.loading:
            self.loading = False
            self.activity.setText(f"Loaded {result.items:,} items in {result.seconds:.1f} s")
        self.refresh_choices()
        self.show_count()
        if self.search.text().strip():
            self.run_search()

    def show_status(self, status: SyncStatus) -> None:
        wait = "" if status.next_at is None else \
            f", next sync in {max(0, round(status.next_at - time.time()))} s"
        text = {"idle": "Up to date", "syncing": "Syncing...", "paused": "Paused",
                "offline": f"Offline ({status.failures} failed)",
                "stopped": "Stopped"}[status.state]
        if status.last_error is not None and status.state in ("offline", "stopped"):
            text += f": {status.last_error}"
        self.status.setText(text + wait)


def provider_from(args: argparse.Namespace, stack: contextlib.ExitStack[Any]
                  ) -> tuple[Any, str]:
    """The provider the options name, and a title; by default the emulator, edited live."""
    if args.vendor == "contentstack":
        return Contentstack(args.api_key, args.delivery_token, args.environment or "production",
                            region=args.region, base_url=args.base_url), "Contentstack"
    if args.vendor == "kontent":
        return Kontent(args.project_id, api_key=args.api_key,
                       base_url=args.base_url), "Kontent.ai"
    if args.space:
        return Contentful(args.space, args.token, args.environment or "master",
                          base_url=args.base_url), f"Contentful space {args.space}"
    space = generate_space(entries=args.entries, assets=40, seed=7)
    emulator = stack.enter_context(Emulator(space, access_token=DEMO_TOKEN))
    stack.enter_context(SpaceEditor(space, interval=3.0, seed=1))  # first: a new article
    return Contentful(space.space_id, DEMO_TOKEN, space.environment, base_url=emulator.base_url,
                      limit=100), "the built-in emulator (edited every 3 s)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vendor", choices=("contentful", "contentstack", "kontent"),
                        default="contentful")
    parser.add_argument("--space", help="Contentful space id (default: the emulator)")
    parser.add_argument("--token", help="Contentful delivery token")
    parser.add_argument("--environment", help="Contentful (master) or Contentstack environment")
    parser.add_argument("--api-key", help="Contentstack API key, or Kontent.ai secure access key")
    parser.add_argument("--delivery-token", help="Contentstack delivery token")
    parser.add_argument("--region", help="Contentstack region (us, eu, azure-na, ...)")
    parser.add_argument("--project-id", help="Kontent.ai environment (project) id")
    parser.add_argument("--base-url", help="another API host (a local emulator, a proxy)")
    parser.add_argument("--db", type=Path, help="store file (default: a temporary one)")
    parser.add_argument("--entries", type=int, default=2000, help="emulator: entries to generate")
    parser.add_argument("--interval", type=float, default=4.0, help="seconds between syncs")
    parser.add_argument("--screenshot", help="save a screenshot to this PNG file, then quit")
    parser.add_argument("--after", type=float, default=8.0, help="seconds before --screenshot")
    args = parser.parse_args()
    if args.vendor == "contentful" and bool(args.space) != bool(args.token):
        parser.error("--space and --token go together")
    if args.vendor == "contentstack" and not (args.api_key and args.delivery_token):
        parser.error("contentstack needs --api-key, --delivery-token and --environment")
    if args.vendor == "kontent" and not args.project_id:
        parser.error("kontent needs --project-id")
    return args


def main() -> int:
    args = parse_args()
    app = QApplication(sys.argv[:1])
    with contextlib.ExitStack() as stack:
        provider, title = provider_from(args, stack)
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="qt-browser-"))
        cache = stack.enter_context(Cache(provider, path=args.db or Path(folder) / "store.db"))
        window = Browser(cache, title, args.interval)
        stack.callback(window.auto.stop)
        window.show()
        if args.screenshot:
            def shoot() -> None:
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                window.grab().save(args.screenshot)
                print(f"saved {args.screenshot}")
                app.quit()
            QTimer.singleShot(int(args.after * 1000), shoot)
        return app.exec()


if __name__ == "__main__":
    sys.exit(main())
