"""The ``localcache`` command: sync, export, stats, snapshot, assets, emulator, demo.

Every failure prints one line on stderr naming what failed and exits non-zero; no traceback
reaches the user, and no access token appears in anything printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import ConfigurationError, LocalCacheError

__all__ = ["main"]

TOKEN_ENV = "LOCALCACHE_ACCESS_TOKEN"

EPILOG = {
    "sync": "example: localcache sync --db app.sqlite3 --space cfexampleapi "
            "--environment master --token $TOKEN",
    "export": "example: localcache export --db app.sqlite3 > content.jsonl",
    "snapshot": "example: localcache snapshot create --db app.sqlite3 --output content.snap",
    "stats": "example: localcache stats --db app.sqlite3",
    "assets": "example: localcache assets download --db app.sqlite3",
    "emulator": "example: localcache emulator --port 8000",
    "demo": "example: localcache demo",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="localcache",
                     description="An offline SQLite cache of a headless CMS, kept current by "
                                 "its Sync API.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log retries and warnings on stderr")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sync = commands.add_parser("sync", help="sync a space into a store file",
                               epilog=EPILOG["sync"])
    sync.add_argument("--db", type=Path, help="store file (default: the user data directory)")
    sync.add_argument("--provider", choices=["contentful", "contentstack", "kontent"],
                      default="contentful")
    sync.add_argument("--space", help="Contentful space id (contentstack: the stack's api key; "
                                      "kontent: the environment id)")
    sync.add_argument("--api-key", help="Contentstack: the stack's api key")
    sync.add_argument("--environment-id", help="Kontent.ai: the environment id")
    sync.add_argument("--environment", help="Contentful environment (default master) or "
                                            "Contentstack publishing environment")
    sync.add_argument("--token", help=f"delivery token; Kontent.ai: the secure access or preview "
                                      f"API key, if any (or set {TOKEN_ENV})")
    sync.add_argument("--region", help="Contentstack region: na, eu, azure-na, azure-eu, gcp-na")
    sync.add_argument("--branch", help="Contentstack branch")
    sync.add_argument("--api-version", type=int, choices=[1, 2], default=2,
                      help="Kontent.ai Sync API version (default 2)")
    sync.add_argument("--base-url", help="API base URL (default: the vendor's CDN)")
    sync.add_argument("--preview", action="store_true", help="use the preview API")
    sync.add_argument("--app-name", help="application name for the default store directory")
    sync.add_argument("--snapshot", type=Path, help="seed a new store from this snapshot file")
    sync.add_argument("--limit", type=int,
                      help="Contentful: items per initial-sync page (1-1000, default 1000)")
    sync.add_argument("--type", dest="sync_type",
                      help="initial sync of one kind only: Contentful Entry, Asset, Deletion, "
                           "...; Contentstack entry_published, asset_published, ...")
    sync.add_argument("--content-type",
                      help="initial sync of one content type (Contentful: with --type Entry)")
    sync.add_argument("--full", action="store_true",
                      help="force a fresh initial sync, built beside the live data")
    sync.add_argument("--rebuild-if-corrupt", action="store_true",
                      help="move a damaged store aside (never deleted) and rebuild it")

    snapshot = commands.add_parser("snapshot", help="create or inspect a prepackaged snapshot",
                                   epilog=EPILOG["snapshot"])
    snapshot_commands = snapshot.add_subparsers(dest="snapshot_command", required=True,
                                                parser_class=_Parser)
    create = snapshot_commands.add_parser(
        "create", help="write a snapshot of a store, or of recorded sync pages",
        epilog=EPILOG["snapshot"])
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", type=Path, help="the store to snapshot")
    source.add_argument("--from-pages", type=Path,
                        help="a directory of saved sync pages (JSON files, in name order)")
    create.add_argument("--output", type=Path, required=True, help="the snapshot file to write")
    create.add_argument("--compress", action="store_true",
                        help="store the database zlib-compressed (about a quarter of its size)")
    create.add_argument("--with-assets", action="store_true",
                        help="bundle the asset files on disk (with --db; the directory the "
                             "app's Cache stored), so a first launch shows them offline")
    create.add_argument("--asset-locales", help="with --with-assets: only these locales "
                                                "(comma-separated)")
    create.add_argument("--asset-mime-types", help="with --with-assets: only these types, "
                                                   "e.g. image/*,application/pdf")
    create.add_argument("--asset-max-file-size", type=int,
                        help="with --with-assets: only files of at most this many bytes")
    create.add_argument("--space", help="space id (--from-pages; default: read from the pages)")
    create.add_argument("--environment", help="environment (--from-pages; default: from pages)")
    info = snapshot_commands.add_parser("info", help="print a snapshot's metadata",
                                        epilog="example: localcache snapshot info content.snap")
    info.add_argument("file", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON")

    export = commands.add_parser("export", help="print every record as JSON Lines",
                                 epilog=EPILOG["export"])
    export.add_argument("--db", type=Path, required=True)

    stats = commands.add_parser("stats", help="what a store holds", epilog=EPILOG["stats"])
    stats.add_argument("--db", type=Path, required=True)
    stats.add_argument("--json", action="store_true", help="print JSON")

    _asset_commands(commands)

    emulator = commands.add_parser("emulator", help="run a local CMS for app development",
                                   epilog=EPILOG["emulator"])
    emulator.add_argument("--port", type=int, default=8000)
    emulator.add_argument("--entries", type=int, default=500)
    emulator.add_argument("--token", default="localcache-dev-token",
                          help="access token the emulator accepts")

    demo = commands.add_parser("demo", help="sync a generated space from the built-in "
                                            "emulator, offline", epilog=EPILOG["demo"])
    demo.add_argument("--dir", type=Path, help="where to keep the demo store (default: temp)")
    demo.add_argument("--entries", type=int, default=500)
    return parser


def _asset_commands(commands: Any) -> None:
    assets = commands.add_parser("assets", help="download or check a store's asset files",
                                 epilog=EPILOG["assets"])
    asset_commands = assets.add_subparsers(dest="assets_command", required=True,
                                           parser_class=_Parser)
    download = asset_commands.add_parser(
        "download", help="fetch the asset files the store needs and the disk lacks, with the "
                         "policy the app's Cache stored", epilog=EPILOG["assets"])
    check = asset_commands.add_parser(
        "check", help="compare the asset files on disk with the store",
        epilog="example: localcache assets check --db app.sqlite3 --fix")
    for command in (download, check):
        command.add_argument("--db", type=Path, required=True)
        command.add_argument("--directory", type=Path,
                             help="the asset directory (default: the one the app's Cache "
                                  "stored, else the user cache directory)")
        command.add_argument("--asset-base-url",
                             help="replace the scheme and host of asset URLs (default: stored)")
    download.add_argument("--workers", type=int, help="downloads at once (default: stored, 8)")
    check.add_argument("--fix", action="store_true",
                       help="remove orphans, queue missing and damaged files again")
    check.add_argument("--json", action="store_true", help="print JSON")


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="localcache: %(levelname)s: %(message)s")
    secrets = [s for s in (getattr(args, "token", None), os.environ.get(TOKEN_ENV)) if s]
    handler: Callable[[argparse.Namespace], int] = COMMANDS[args.command]
    try:
        return handler(args)
    except LocalCacheError as exc:
        return _fail(str(exc), secrets)
    except KeyboardInterrupt:
        return _fail("interrupted", secrets, code=130)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc}", secrets, code=70)


def _fail(message: str, secrets: list[str], code: int = 1) -> int:
    for secret in secrets:
        if len(secret) >= 6:  # shorter strings are not real tokens, and would mangle words
            message = message.replace(secret, "***")
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"localcache: error: {first}", file=sys.stderr)
    return code


def _sync(args: argparse.Namespace) -> int:
    from . import signals
    from .cache import Cache
    from .progress import SyncProgress

    provider = _provider(args)
    with Cache(provider, path=args.db, app_name=args.app_name, snapshot=args.snapshot,
               rebuild_if_corrupt=args.rebuild_if_corrupt) as cache:
        if cache.snapshot_error is not None:
            print(f"localcache: warning: snapshot not used: {cache.snapshot_error}",
                  file=sys.stderr)
        progress = SyncProgress(sys.stderr)
        with signals.sync_progress.connected_to(progress, sender=cache):
            result = cache.sync(full=args.full)
        progress.done()
    print(result.summary())
    return 0


def _provider(args: argparse.Namespace) -> Any:
    from .providers.contentful import Contentful
    from .providers.contentstack import Contentstack
    from .providers.kontent import Kontent

    token = args.token or os.environ.get(TOKEN_ENV)
    if args.limit is not None and args.provider != "contentful":
        raise ConfigurationError("--limit applies to Contentful only: the other vendors' sync "
                                 "pages have a fixed size")
    if args.provider == "kontent":
        environment_id = args.environment_id or args.space
        if not environment_id:
            raise ConfigurationError("sync --provider kontent needs --environment-id")
        if args.sync_type is not None:
            raise ConfigurationError("--type does not apply to Kontent.ai")
        filters = {"system.type": args.content_type} if args.content_type else None
        return Kontent(environment_id, token, args.preview, args.api_version, args.base_url,
                       filters=filters)
    if not token:
        raise ConfigurationError(f"sync needs an access token: pass --token or set {TOKEN_ENV}")
    if args.provider == "contentstack":
        api_key = args.api_key or args.space
        if not api_key or not args.environment:
            raise ConfigurationError("sync --provider contentstack needs --api-key and "
                                     "--environment")
        return Contentstack(api_key, token, args.environment, args.region, args.base_url,
                            args.branch, content_type_uid=args.content_type,
                            sync_type=args.sync_type)
    if not args.space:
        raise ConfigurationError("sync needs --space")
    sync_type = args.sync_type or ("Entry" if args.content_type else "all")
    return Contentful(args.space, token, args.environment or "master", args.base_url,
                      preview=args.preview, sync_type=sync_type,
                      content_type=args.content_type, limit=args.limit)


def _open_store(path: Path, assets: bool = False) -> Any:
    from .cache import Cache

    return Cache.open(path, assets=assets)


def _bundled(args: argparse.Namespace) -> Any:
    """``with_assets=`` for ``snapshot create``: False, True, or a policy that filters."""
    from .assets.policy import AssetPolicy

    def listed(text: str | None) -> list[str] | None:
        return None if text is None else [part.strip() for part in text.split(",")]

    filters = (args.asset_locales, args.asset_mime_types, args.asset_max_file_size)
    if not args.with_assets:
        if any(value is not None for value in filters):
            raise ConfigurationError("--asset-locales, --asset-mime-types and "
                                     "--asset-max-file-size go with --with-assets")
        return False
    if all(value is None for value in filters):
        return True
    return AssetPolicy(locales=listed(args.asset_locales),
                       mime_types=listed(args.asset_mime_types),
                       max_file_size=args.asset_max_file_size)


def _export(args: argparse.Namespace) -> int:
    with _open_store(args.db) as cache:
        out = sys.stdout
        for record_type in ("Entry", "Asset"):
            for record in cache.iter_records(record_type):
                out.write(json.dumps({
                    "type": record.type,
                    "id": record.id,
                    "content_type": record.content_type,
                    "revision": record.revision,
                    "fields": record.fields,
                }, ensure_ascii=False, sort_keys=False) + "\n")
    return 0


def _stats(args: argparse.Namespace) -> int:
    with _open_store(args.db) as cache:
        stats = cache.stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    for key, value in stats.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        print(f"{key:>24}: {value}")
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    from .snapshot import SnapshotInfo, read_snapshot_info

    info: SnapshotInfo
    if args.snapshot_command == "info":
        info = read_snapshot_info(args.file)
        if args.json:
            print(json.dumps(info.to_json(), indent=2))
            return 0
    elif args.db is not None:
        bundled = _bundled(args)
        # Cache.open gives a clear error when the file is missing or is not a store.
        with _open_store(args.db, assets=bundled is not False) as cache:
            info = cache.create_snapshot(args.output, compress=args.compress,
                                         with_assets=bundled)
    else:
        if args.with_assets:
            raise ConfigurationError("--with-assets needs --db: saved sync pages hold no "
                                     "asset files")
        info = _snapshot_from_pages(args)
    for key, value in info.to_json().items():
        if key == "token" and value:
            value = f"{value[:12]}... ({len(value)} chars)"
        elif key == "assets" and value:
            value = (f"{len(value['files'])} files, {value['size']:,} bytes, "
                     f"sha256 {value['sha256']}")
        print(f"{key:>16}: {value}")
    return 0


def _snapshot_from_pages(args: argparse.Namespace) -> Any:
    import tempfile

    from .cache import Cache
    from .providers.recorded import RecordedPages

    provider = RecordedPages(args.from_pages, args.space, args.environment)
    with tempfile.TemporaryDirectory(prefix="localcache-pages-") as scratch, \
            Cache(provider, path=Path(scratch) / "pages.sqlite3") as cache:
        while not provider.exhausted:
            cache.sync()
        return cache.create_snapshot(args.output, compress=args.compress)


def _open_assets(args: argparse.Namespace) -> Any:
    """The store with its asset files: the stored policy, with the command line's changes."""
    import dataclasses

    from .cache import Cache

    cache = Cache.open(args.db, assets=True, asset_base_url=args.asset_base_url)
    changes = {key: value for key, value in (
        ("directory", args.directory), ("workers", getattr(args, "workers", None)))
        if value is not None}
    if not changes:
        return cache
    policy = dataclasses.replace(cache.assets.policy, **changes)
    cache.close()
    return Cache.open(args.db, assets=policy, asset_base_url=args.asset_base_url)


def _assets(args: argparse.Namespace) -> int:
    from .progress import SyncProgress

    class FileProgress(SyncProgress):
        """The sync progress bar, counting files."""

        def render(self, now: float) -> str:
            return super().render(now).replace("sync", "assets", 1).replace("items", "files")

    with _open_assets(args) as cache:
        if args.assets_command == "check":
            report = cache.assets.check(fix=args.fix)
            found = {key: getattr(report, key) for key in (
                "missing", "orphaned", "damaged", "pending", "skipped")}
            if args.json:
                print(json.dumps({**found, "fixed": report.fixed, "clean": report.clean},
                                 indent=2))
            else:
                for key, values in found.items():
                    print(f"{key:>10}: {len(values)}")
                print("     clean: yes" if report.clean else "     clean: no")
            return 0 if report.clean or args.fix else 1
        bar = FileProgress(sys.stderr)
        run = cache.assets.download(
            progress=lambda settled, total: bar(None, page=0, items=settled, total=total))
        bar.done()
        stats = cache.assets.stats()
    print(f"assets: {run.downloaded} downloaded ({run.bytes:,} bytes), {run.failed} failed, "
          f"{run.skipped} skipped, in {run.seconds:.1f}s; {stats.files} files, "
          f"{stats.bytes:,} bytes on disk")
    if run.failed:
        raise LocalCacheError(f"{run.failed} asset files could not be downloaded (see -v); "
                              "run the command again to retry them")
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from .emulator import Emulator, generate_space

    space = generate_space(entries=args.entries)
    emulator = Emulator(space, access_token=args.token, port=args.port)
    emulator.start()
    print(f"emulator serving space {space.space_id!r} environment {space.environment!r} at "
          f"{emulator.base_url} (token: {args.token}); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        emulator.stop()


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(directory=args.dir, entries=args.entries)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sync": _sync,
    "export": _export,
    "stats": _stats,
    "snapshot": _snapshot,
    "assets": _assets,
    "emulator": _emulator,
    "demo": _demo,
}
