"""Which tables the current run wrote, at which versions: the candidate release's own tables.

`lake.write_table` reports every commit here. A module-level journal (not a context variable)
because cohorts are written from worker threads, which do not inherit context variables; one
process runs one release cycle at a time (the lake lock enforces it across processes).
"""

from __future__ import annotations

import threading

_guard = threading.Lock()
_writes: dict[str, int] | None = None


def start() -> None:
    global _writes
    with _guard:
        if _writes is not None:
            raise RuntimeError("a release cycle is already running in this process")
        _writes = {}


def stop() -> dict[str, int]:
    """End the journal; returns `zone/table -> version` of every table written since start()."""
    global _writes
    with _guard:
        written, _writes = dict(_writes or {}), None
    return written


def active() -> bool:
    return _writes is not None


def record(table: str, version: int) -> None:
    """Called after each committed write; a no-op outside a release cycle (tests, tools)."""
    with _guard:
        if _writes is not None:
            _writes[table] = version


def written() -> dict[str, int]:
    with _guard:
        return dict(_writes or {})
