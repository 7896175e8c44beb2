"""A one-line progress bar on stderr for long conversions and verifications.

Shown only when stderr is a terminal, only once a job has run for ``NNPORT_PROGRESS_DELAY``
seconds (2 by default), never with ``--quiet`` (or ``NNPORT_QUIET=1``).  Pipes and CI logs
stay clean.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

_state: dict[str, Any] = {"t0": None, "quiet": False, "drawn": False, "last": 0.0}
_WIDTH = 24


def set_quiet(quiet: bool = True) -> None:
    _state["quiet"] = quiet


def start() -> None:
    """Start the clock of a job (the CLI calls this once per command)."""
    _state["t0"] = time.monotonic()


def _enabled() -> bool:
    if _state["quiet"] or os.environ.get("NNPORT_QUIET"):
        return False
    try:
        if not sys.stderr.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    if _state["t0"] is None:
        return False
    delay = float(os.environ.get("NNPORT_PROGRESS_DELAY", "2"))
    return time.monotonic() - _state["t0"] >= delay


def update(label: str, done: int | None = None, total: int | None = None) -> None:
    """Redraw the bar (at most ~10 times a second); ``done=None`` shows just the stage."""
    if not _enabled():
        return
    now = time.monotonic()
    if now - _state["last"] < 0.1 and done is not None and done != total:
        return
    _state["last"] = now
    if done is not None and total:
        frac = min(max(done / total, 0.0), 1.0)
        bar = "#" * int(frac * _WIDTH) + "-" * (_WIDTH - int(frac * _WIDTH))
        text = f"nnport: {label} [{bar}] {done}/{total}"
    else:
        text = f"nnport: {label} ..."
    sys.stderr.write("\r\033[K" + text)
    sys.stderr.flush()
    _state["drawn"] = True


def finish() -> None:
    """Clear the bar so the command's own output starts on a clean line."""
    if _state["drawn"]:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
        _state["drawn"] = False
