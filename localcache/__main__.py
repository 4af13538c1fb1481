"""``python -m localcache``: the same as the ``localcache`` command."""

from .cli import main

raise SystemExit(main())
