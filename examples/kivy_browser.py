"""Browse a cached space with Kivy: a live list per content type, a detail pane with resolved
links, full-text search, a locale switcher and the background sync's status.

By default it needs no account: it starts the built-in emulator with a generated space, a
SpaceEditor changes that space every 3 seconds, and ``cache.start_auto_sync(interval=5.0)``
brings the changes in; rows flash as they change, move or arrive. Pass a real space instead:

    python examples/kivy_browser.py
    python examples/kivy_browser.py --space cfexampleapi --token <delivery token>
    python examples/kivy_browser.py --vendor contentstack --api-key <key> \\
        --delivery-token <token> --environment production
    python examples/kivy_browser.py --vendor kontent --project-id <environment id>
    python examples/kivy_browser.py --screenshot docs/img/kivy_browser.png --after 8

How it is wired (docs/ui.md, "Kivy"): ``CacheEvents`` turns the sync's signals into Kivy events
on the main thread (status bar, change log, detail refresh), and ``RecycleData`` keeps the
RecycleView's own ``data`` list in step with the query, edit by edit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["KIVY_NO_ARGS"] = "1"  # Kivy would parse sys.argv itself; argparse does it here
# Kivy's default log mode takes over the root logger and prints every library's DEBUG records
# (peewee logs each SQL statement): keep Kivy's handlers on Kivy's own logger.
os.environ.setdefault("KIVY_LOG_MODE", "MIXED")

from kivy.app import App
from kivy.clock import Clock
from kivy.config import Config
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior
from kivy.utils import escape_markup

from localcache import Cache, ChangeSet, Contentful, Contentstack, Kontent
from localcache.emulator import Emulator, SpaceEditor, generate_space
from localcache.kivy import CacheEvents, RecycleData

DEMO_TOKEN = "kivy-browser-token"
FLASH_SECONDS = 4.0
SORTS = {"Newest first": "-sys.updatedAt", "Title A-Z": None, "Id": "sys.id"}

KV = """
#:import dp kivy.metrics.dp
<Row>:
    padding: dp(10), 0
    spacing: dp(8)
    canvas.before:
        Color:
            rgba: (0.22, 0.42, 0.75, 1) if self.selected else (0.16, 0.16, 0.18, 1)
        Rectangle:
            pos: self.pos
            size: self.size
        Color:
            rgba: 0.95, 0.7, 0.15, self.flash * 0.55
        Rectangle:
            pos: self.pos
            size: self.size
        Color:
            rgba: 0.25, 0.25, 0.28, 1
        Rectangle:
            pos: self.x, self.y
            size: self.width, 1
    Label:
        text: root.title
        markup: True
        text_size: self.size
        halign: "left"
        valign: "middle"
        shorten: True
        shorten_from: "right"
    Label:
        text: root.detail
        size_hint_x: None
        width: dp(230)
        text_size: self.size
        halign: "right"
        valign: "middle"
        shorten: True
        shorten_from: "left"
        font_size: "13sp"
        color: 0.7, 0.7, 0.75, 1

<Heading@Label>:
    size_hint_y: None
    height: dp(26)
    text_size: self.size
    halign: "left"
    valign: "middle"
    bold: True
    color: 0.8, 0.85, 1, 1

<Browser>:
    orientation: "vertical"
    padding: dp(8)
    spacing: dp(6)
    canvas.before:
        Color:
            rgba: 0.1, 0.1, 0.12, 1
        Rectangle:
            pos: self.pos
            size: self.size
    BoxLayout:
        size_hint_y: None
        height: dp(38)
        spacing: dp(6)
        Spinner:
            id: types
            text: "content type"
            size_hint_x: None
            width: dp(170)
            on_text: app.choose_type(self.text)
        Spinner:
            id: sort
            text: "Newest first"
            values: ["Newest first", "Title A-Z", "Id"]
            size_hint_x: None
            width: dp(150)
            on_text: app.choose_sort(self.text)
        TextInput:
            id: search
            hint_text: "Search this content type (full text, current locale)"
            multiline: False
            padding: dp(8), dp(9)
            on_text: app.search_later()
        Spinner:
            id: locales
            text: "locale"
            size_hint_x: None
            width: dp(120)
            on_text: app.choose_locale(self.text)
    BoxLayout:
        spacing: dp(8)
        BoxLayout:
            orientation: "vertical"
            size_hint_x: 0.55
            Heading:
                id: list_heading
                text: "Entries"
            BoxLayout:
                id: list_area
        BoxLayout:
            orientation: "vertical"
            spacing: dp(6)
            Heading:
                text: "Detail"
            ScrollView:
                canvas.before:
                    Color:
                        rgba: 0.14, 0.14, 0.16, 1
                    Rectangle:
                        pos: self.pos
                        size: self.size
                Label:
                    id: detail
                    markup: True
                    padding: dp(10), dp(8)
                    size_hint_y: None
                    height: self.texture_size[1]
                    text_size: self.width, None
            Heading:
                text: "Recent changes (one line per committed sync page)"
            Label:
                id: changes
                size_hint_y: None
                height: dp(130)
                text_size: self.size
                halign: "left"
                valign: "top"
                font_size: "13sp"
                color: 0.75, 0.85, 0.75, 1
    BoxLayout:
        size_hint_y: None
        height: dp(30)
        spacing: dp(10)
        Label:
            id: status
            text_size: self.size
            halign: "left"
            valign: "middle"
            shorten: True
            font_size: "13sp"
        ProgressBar:
            id: progress
            size_hint_x: None
            width: dp(260)
            max: 100

<ListView@RecycleView>:
    viewclass: "Row"
    RecycleBoxLayout:
        orientation: "vertical"
        default_size: None, dp(34)
        default_size_hint: 1, None
        size_hint_y: None
        height: self.minimum_height
"""


def plain(value: Any) -> str:
    """A field value as text: a Kontent.ai element by its ``value``, a list joined."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if isinstance(value, list):
        return ", ".join(plain(item) for item in value)
    return "" if value is None else str(value)


class Row(RecycleDataViewBehavior, BoxLayout):  # type: ignore[misc]
    """One list row: title and id (plus a number field, or a search snippet); it flashes when its
    record changed in the last few seconds, and selects itself when touched."""

    title = StringProperty("")
    detail = StringProperty("")
    selected = BooleanProperty(False)
    flash = NumericProperty(0.0)
    record_id = ""

    def refresh_view_attrs(self, rv: Any, index: int, data: dict[str, Any]) -> Any:
        app = App.get_running_app()
        self.record_id = data["id"]
        title = plain(data.get(app.title_field))
        self.title = escape_markup(title) if title else "[i](no title)[/i]"
        extra = plain(data.get(app.extra_field)) if app.extra_field else ""
        extra = f"{app.extra_field} {extra}   " if extra else ""
        self.detail = data.get("snippet") or f"{extra}{data['id']}"
        self.selected = data["id"] == app.selected_id
        changed = app.changed_at.get(data["id"], 0.0)
        self.flash = max(0.0, 1.0 - (time.monotonic() - changed) / FLASH_SECONDS)
        return super().refresh_view_attrs(rv, index, {})  # no other attributes to copy

    def on_touch_down(self, touch: Any) -> bool:
        if self.collide_point(*touch.pos):
            App.get_running_app().select(self.record_id)
            return True
        return bool(super().on_touch_down(touch))


class Browser(BoxLayout):  # type: ignore[misc]
    pass


class BrowserApp(App):  # type: ignore[misc]
    """The window; the cache, its events and the live list belong to it."""

    def __init__(self, cache: Cache, args: argparse.Namespace,
                 editor: SpaceEditor | None) -> None:
        super().__init__()
        self.title = "localcache - Kivy browser"
        self.cache = cache
        self.args = args
        self.editor = editor
        self.events = CacheEvents(cache)
        self.rows: RecycleData | None = None
        self.auto: Any = None
        self.content_type: str | None = None
        self.title_field = "title"
        self.extra_field: str | None = None
        self.locale: str | None = None
        self.selected_id: str | None = None
        self.changed_at: dict[str, float] = {}
        self.change_log: list[str] = []
        self.progress_text = ""
        self.initial = False
        self._search = Clock.create_trigger(lambda dt: self.run_search(), 0.25)

    # -- building -----------------------------------------------------------------------------

    def build(self) -> Browser:
        Builder.load_string(KV)
        root = Browser()
        self.ui = root.ids
        self.live_view = Builder.load_string("ListView:")
        self.search_view = Builder.load_string("ListView:")
        root.ids.list_area.add_widget(self.live_view)
        self.events.bind(on_sync_started=self.on_sync_started,
                         on_sync_progress=self.on_sync_progress,
                         on_sync_finished=lambda _, result: self.refresh_choices(),
                         on_sync_failed=self.on_sync_failed,
                         on_sync_status=lambda _, status: self.show_status(),
                         on_changes=self.on_changes)
        self.refresh_choices()
        self.auto = self.cache.start_auto_sync(interval=self.args.interval)
        Clock.schedule_interval(lambda dt: self.tick(), 0.25)
        if self.args.screenshot:
            Clock.schedule_once(lambda dt: self.screenshot(), self.args.after)
        return root

    def refresh_choices(self) -> None:
        """Content types and locales, once a sync has brought them (or the store had them)."""
        types = {ct.id: ct for ct in self.cache.content_types()}
        self.ui.types.values = sorted(types)
        if self.content_type is None and types:
            self.ui.types.text = "article" if "article" in types else sorted(types)[0]
        locales = self.cache.locales()
        self.ui.locales.values = [locale.code for locale in locales]
        if self.locale is None and locales:
            default = next((lc.code for lc in locales if lc.default), locales[0].code)
            self.ui.locales.text = default

    # -- the live list ------------------------------------------------------------------------

    def query(self) -> dict[str, Any]:
        definition = self.cache.content_type(self.content_type or "")
        self.title_field = (definition.display_field if definition and definition.display_field
                            else "title")
        numeric = [f.id for f in (definition.fields if definition else ())
                   if f.type.lower() in ("integer", "number")]
        self.extra_field = numeric[0] if numeric else None
        order = SORTS.get(self.ui.sort.text) or self.title_field
        return {"content_type": self.content_type, "order_by": [order],
                "locale": self.locale, "fields": (self.title_field, *numeric[:1])}

    def show_rows(self) -> None:
        """A RecycleData for the first query, then reset() in place for the next ones."""
        if self.content_type is None or self.locale is None:
            return
        query = self.query()
        if self.rows is None:
            self.rows = RecycleData(self.cache, **query)
            self.rows.attach(self.live_view)
            self.rows.bind(loading=lambda rows, loading: self.rows_loaded(loading))
        else:
            self.rows.reset(**query)
        self.run_search()

    def rows_loaded(self, loading: bool) -> None:
        assert self.rows is not None
        if not loading and self.rows.data and (
                self.selected_id is None or self.cache.entry(self.selected_id) is None):
            self.select(self.rows.data[0]["id"])

    def choose_type(self, content_type: str) -> None:
        if content_type in self.ui.types.values:
            self.content_type = content_type
            self.selected_id = None
            self.show_rows()

    def choose_sort(self, label: str) -> None:
        self.show_rows()

    def choose_locale(self, code: str) -> None:
        if code in self.ui.locales.values:
            self.locale = code
            self.show_rows()
            self.show_detail()

    def select(self, record_id: str) -> None:
        self.selected_id = record_id
        for row in self.visible_rows():  # the others are drawn when they scroll into view
            row.selected = row.record_id == record_id
        self.show_detail()

    def visible_rows(self) -> list[Row]:
        return [row for view in (self.live_view, self.search_view)
                for layout in view.children for row in layout.children]

    # -- search -------------------------------------------------------------------------------

    def search_later(self) -> None:
        self._search()

    def run_search(self) -> None:
        text = self.ui.search.text.strip()
        area = self.ui.list_area
        if not text or self.content_type is None:
            if self.search_view.parent is not None:
                area.remove_widget(self.search_view)
                area.add_widget(self.live_view)
            self.show_heading()
            return
        hits = self.cache.search(text, locale=self.locale, content_type=self.content_type,
                                 limit=50)
        self.search_view.data = [
            {"id": hit.id, self.title_field: hit.record.field(self.title_field, self.locale),
             "snippet": hit.snippet} for hit in hits]
        if self.live_view.parent is not None:
            area.remove_widget(self.live_view)
            area.add_widget(self.search_view)
        self.ui.list_heading.text = f"{len(hits)} search hits for {text!r}"

    def show_heading(self) -> None:
        count = len(self.rows.data) if self.rows is not None else 0
        loading = " (loading...)" if self.rows is not None and self.rows.loading else ""
        self.ui.list_heading.text = (f"{count} entries of type {self.content_type}, "
                                      f"{self.ui.sort.text.lower()}, {self.locale}{loading}")

    # -- detail -------------------------------------------------------------------------------

    def show_detail(self) -> None:
        record = self.cache.entry(self.selected_id) if self.selected_id else None
        if record is None:
            self.ui.detail.text = ("[i]deleted[/i]" if self.selected_id
                                    else "Select a row to see the entry.")
            return
        locale = self.locale
        title = plain(record.field(self.title_field, locale)) or "(no title)"
        lines = [f"[size=20sp][b]{escape_markup(title)}[/b][/size]",
                 f"[color=9aa0b0]{record.content_type} {record.id} - revision "
                 f"{record.revision} - updated {record.updated_at}[/color]", ""]
        for name in record.fields:
            links = record.links(name, locale)
            if links:
                shown = self.describe_links(record.resolve(name, locale))
            else:
                shown = plain(record.field(name, locale)) or "(none)"
            if len(shown) > 240:
                shown = shown[:240] + "..."
            arrow = " -> " if links else ": "
            lines.append(f"[b]{escape_markup(name)}[/b]{arrow}{escape_markup(shown)}")
        self.ui.detail.text = "\n".join(lines)

    def describe_links(self, linked: Any) -> str:
        targets = linked if isinstance(linked, list) else [linked]
        parts = []
        for target in targets:
            if target is None:
                parts.append("(missing)")
                continue
            label = (plain(target.field("name", self.locale))
                     or plain(target.field("title", self.locale)) or target.id)
            kind = target.content_type or "asset"
            parts.append(f"{label} ({kind} {target.id})")
        return "; ".join(parts) or "(nothing stored)"

    # -- sync events --------------------------------------------------------------------------

    def on_sync_started(self, events: CacheEvents, initial: bool) -> None:
        self.progress_text = "initial sync" if initial else "delta sync"
        self.initial = initial

    def on_sync_progress(self, events: CacheEvents, page: int, items: int,
                         total: int | None) -> None:
        of = f" of {total}" if total else ""
        self.progress_text = f"page {page}, {items}{of} items"
        if total:
            self.ui.progress.value = min(100.0, 100.0 * items / total)

    def on_sync_failed(self, events: CacheEvents, error: Exception) -> None:
        self.log_line(f"sync failed: {error}")

    def on_changes(self, events: CacheEvents, changes: ChangeSet) -> None:
        now = time.monotonic()
        if not self.initial:  # everything is new then: flash only what changes afterwards
            for record_id in (*changes.entries_changed, *changes.affected):
                self.changed_at[record_id] = now
        parts = [f"{label} {len(ids)}" for label, ids in (
            ("added", changes.entries_added), ("updated", changes.entries_updated),
            ("deleted", changes.entries_deleted), ("assets", changes.assets_changed),
            ("linking", changes.affected)) if ids]
        types = ", ".join(sorted(changes.content_types)) or "assets"
        kind = "initial sync" if self.initial else "sync"
        self.log_line(f"{kind} page {changes.page}: {', '.join(parts) or 'nothing'} ({types})")
        touched = {*changes.entries_changed, *changes.entries_deleted, *changes.affected}
        if self.selected_id in touched:
            self.show_detail()
        if self.search_view.parent is not None:
            self.run_search()

    def log_line(self, text: str) -> None:
        self.change_log = [f"{time.strftime('%H:%M:%S')}  {text}", *self.change_log][:7]
        self.ui.changes.text = "\n".join(self.change_log)

    def tick(self) -> None:
        """Four times a second: fade the flashes, count down to the next sync."""
        now = time.monotonic()
        fading = {i for i, at in self.changed_at.items() if now - at < FLASH_SECONDS + 0.5}
        for row in self.visible_rows():
            if row.record_id in fading:
                row.flash = max(0.0, 1.0 - (now - self.changed_at[row.record_id])
                                / FLASH_SECONDS)
        self.changed_at = {i: self.changed_at[i] for i in fading}
        self.show_status()
        if self.search_view.parent is None:
            self.show_heading()

    def show_status(self) -> None:
        status = self.events.status or (self.auto.status if self.auto is not None else None)
        if status is None:
            return
        parts = [f"Auto sync: {status.state}"]
        if status.state == "syncing":
            parts.append(self.progress_text)
            if "of" not in self.progress_text:  # no total from this vendor: keep moving
                self.ui.progress.value = (self.ui.progress.value + 7) % 100
        elif status.next_at is not None:
            wait = max(0.0, status.next_at - time.time())
            parts.append(f"next in {wait:.0f}s")
            self.ui.progress.value = 100.0 * (1 - min(1.0, wait / self.auto.interval))
        if status.last_result is not None:
            parts.append(f"last: {status.last_result.summary()}")
        if status.last_error is not None:
            parts.append(f"error ({status.failures}): {status.last_error}")
        if self.editor is not None:
            parts.append(f"emulator edits: {self.editor.edits}")
        self.ui.status.text = "  |  ".join(parts)

    # -- screenshot and shutdown --------------------------------------------------------------

    def screenshot(self) -> None:
        from kivy.core.window import Window

        target = Path(self.args.screenshot).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        written = Window.screenshot(name=str(target))  # Kivy numbers the name: move it
        if written:
            os.replace(written, target)
        print(f"screenshot saved to {target}")
        self.stop()

    def on_stop(self) -> None:
        self.events.close()
        if self.rows is not None:
            self.rows.close()
        if self.auto is not None:
            self.auto.stop()


def provider_from(args: argparse.Namespace, stack: contextlib.ExitStack
                  ) -> tuple[Any, SpaceEditor | None]:
    """The provider the options name; by default the emulator, edited by a SpaceEditor."""
    if args.vendor == "contentstack":
        return Contentstack(args.api_key, args.delivery_token, args.environment or "production",
                            region=args.region, base_url=args.base_url), None
    if args.vendor == "kontent":
        return Kontent(args.project_id, api_key=args.api_key, base_url=args.base_url), None
    if args.space:
        return Contentful(args.space, args.token, args.environment or "master",
                          base_url=args.base_url), None
    space = generate_space(entries=args.entries, assets=40, seed=7)
    emulator = stack.enter_context(Emulator(space, access_token=DEMO_TOKEN))
    editor = stack.enter_context(SpaceEditor(space, interval=3.0))
    return Contentful(space.space_id, DEMO_TOKEN, space.environment,
                      base_url=emulator.base_url, limit=100), editor


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
    parser.add_argument("--entries", type=int, default=300, help="emulator: entries to generate")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between syncs")
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


def main() -> None:
    args = parse_args()
    Config.set("graphics", "width", "1280")
    Config.set("graphics", "height", "800")
    Config.set("input", "mouse", "mouse,multitouch_on_demand")
    with contextlib.ExitStack() as stack:
        provider, editor = provider_from(args, stack)
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="kivy-browser-"))
        cache = stack.enter_context(Cache(provider, path=args.db or Path(folder) / "store.db"))
        BrowserApp(cache, args, editor).run()


if __name__ == "__main__":
    main()
