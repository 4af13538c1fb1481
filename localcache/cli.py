"""The ``localcache`` command: sync, export, stats, emulator, demo.

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


def _open_store(path: Path) -> Any:
    from .cache import Cache

    return Cache.open(path)


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
        with _open_store(args.db) as cache:  # a clear error when it is missing or not a store
            info = cache.create_snapshot(args.output, compress=args.compress)
    else:
        info = _snapshot_from_pages(args)
    for key, value in info.to_json().items():
        if key == "token" and value:
            value = f"{value[:12]}... ({len(value)} chars)"
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
    "emulator": _emulator,
    "demo": _demo,
}
