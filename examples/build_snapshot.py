"""The release-time script: sync the space and write the snapshot the app bundles.

Run it in the release pipeline, then ship the snapshot file inside the app; on first launch,
``Cache(..., snapshot=<bundled file>)`` installs it and the first sync fetches only the delta.

    python examples/build_snapshot.py --space <id> --token <delivery token> --output content.snap
    python examples/build_snapshot.py --output content.snap          # offline, on the emulator

Set LOCALCACHE_ACCESS_TOKEN instead of --token to keep the token out of the process list.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from localcache import Cache, Contentful, SnapshotInfo
from localcache.emulator import Emulator, generate_space


def build(provider: Contentful, output: Path) -> SnapshotInfo:
    # A scratch store: the release build starts from nothing, so the snapshot holds exactly
    # what the CMS publishes now.
    with tempfile.TemporaryDirectory() as scratch, \
            Cache(provider, path=Path(scratch) / "release.sqlite3") as cache:
        result = cache.sync()
        print(result.summary())
        return cache.create_snapshot(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space")
    parser.add_argument("--environment", default="master")
    parser.add_argument("--token", default=os.environ.get("LOCALCACHE_ACCESS_TOKEN"))
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    if args.space and args.token:
        info = build(Contentful(args.space, args.token, args.environment), args.output)
    else:
        space = generate_space(entries=200, assets=20)
        with Emulator(space, access_token="release-token") as emulator:
            info = build(Contentful(space.space_id, "release-token", base_url=emulator.base_url),
                         args.output)
    print(f"wrote {args.output}: {info.counts['entries']} entries, {info.counts['assets']} "
          f"assets, locales {', '.join(info.locales)}, sha256 {info.sha256[:16]}...")


if __name__ == "__main__":
    main()
