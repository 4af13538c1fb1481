"""Offline asset files: the binaries behind asset records, kept as safely as the records.

One concern a module (docs/assets.md has the user's version):

- ``model.py``    ``AssetFile``: what a provider says about one file of an asset record;
- ``policy.py``   ``AssetPolicy``: which files, which variants, how much disk, how many workers;
- ``naming.py``   file names from the asset id, the locale and a content hash (never the CMS's);
- ``table.py``    the bookkeeping tables in the store's SQLite file, and their SQL;
- ``wanted.py``   what the store needs on disk, per vendor, and the plan that gets it there;
- ``fetch.py``    one file over HTTP: Range resume, verification, fsync, rename;
- ``runner.py``   a download run on a bounded pool of workers;
- ``budget.py``   least-recently-used eviction under ``budget_bytes``, pins kept;
- ``check.py``    ``check(fix=)``: the files on disk against the bookkeeping;
- ``bundle.py``   the files a snapshot carries, and the bookkeeping that travels with them;
- ``files.py``    ``AssetFiles``, the ``cache.assets`` facade;
- ``opening.py``  which policy, directory and vendor a Cache's asset files use.

This package imports nothing here on purpose: providers import ``model.py`` alone, and the
public names come from ``localcache``.
"""
