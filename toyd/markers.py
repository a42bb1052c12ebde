"""The pluggy markers of the ``toyd`` project: ``@hookspec`` for contracts, ``@hookimpl`` for plugins.

They live apart from the hookspec modules so that plugin code (and :mod:`toyd.plugin`)
can mark implementations without importing the contracts, which import the app.
"""

from __future__ import annotations

import pluggy

PROJECT = "toyd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]
