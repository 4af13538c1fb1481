"""UI adapter tests run headless: no window, no display, the toolkit's loop driven by the test.

Set before anything imports Kivy or Qt (pytest loads this file before the modules beside it):

- Kivy: no argv parsing, no log files or console log, ``KIVY_LOG_MODE=PYTHON`` (Kivy's own mode
  would take over the root logger and ``sys.stderr`` for the whole test session), a throwaway
  ``KIVY_HOME`` (its config.ini), no window provider, and ``maxfps`` 0 so ``Clock.tick()``
  never sleeps to pace frames. Only ``kivy.clock``, ``kivy.event`` and ``kivy.properties`` are
  used: a ``Widget`` (a real RecycleView included) asks for a window as it is constructed.
- Qt: the ``offscreen`` platform.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_KIVY_HOME = tempfile.mkdtemp(prefix="localcache-kivy-home-")
atexit.register(shutil.rmtree, _KIVY_HOME, ignore_errors=True)

for _name, _value in {
    "KIVY_NO_ARGS": "1",
    "KIVY_NO_CONSOLELOG": "1",
    "KIVY_NO_FILELOG": "1",
    "KIVY_LOG_MODE": "PYTHON",
    "KIVY_HOME": _KIVY_HOME,
    "KIVY_WINDOW": "",
    "KCFG_GRAPHICS_MAXFPS": "0",
    "QT_QPA_PLATFORM": "offscreen",
}.items():
    os.environ.setdefault(_name, _value)
