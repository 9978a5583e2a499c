"""One writer per lake: a lock file with its owner, host, pid and expiry.

The lock is `<lake>/releases/lock.json`, created with O_CREAT|O_EXCL, which is atomic on a local
or shared POSIX file system (and on NFSv3+): two runs cannot both create it. A second run exits 2
naming the holder. A crashed run's lock stays until it expires (`releases.lock_hours`); only then,
and only with `releases.take_over_stale_lock=true`, may another run take it over, deliberately.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from linkage.errors import LinkageError

LOCK_FILE = "releases/lock.json"


class LakeLocked(LinkageError):
    """Another run holds the lake's lock. Exit code 2: nothing was read or written."""

    exit_code = 2


@dataclass(frozen=True)
class LockHolder:
    owner: str
    host: str
    pid: int
    job: str
    acquired_at: str
    expires_at: str

    def expired(self, now: datetime) -> bool:
        return datetime.fromisoformat(self.expires_at) <= now

    def describe(self) -> str:
        return (
            f"{self.owner} on {self.host} (pid {self.pid}, job {self.job}) since {self.acquired_at}, "
            f"expires {self.expires_at}"
        )


def lock_path(lake: str) -> Path:
    if "://" in str(lake):
        raise LakeLocked(f"the lake lock needs a file-system lake (local or shared mount), not {lake}")
    return Path(lake) / LOCK_FILE


def user_of(environ: Mapping[str, str]) -> str:
    return environ.get("LINKAGE_USER") or environ.get("USER") or environ.get("LOGNAME") or "unknown"


def read_holder(path: Path) -> LockHolder | None:
    try:
        return LockHolder(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # half-written or foreign file: treat as held, expiring now
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return LockHolder("unreadable lock file", "?", -1, "?", now, now)


def acquire(
    lake: str, job: str, hours: float, take_over_stale: bool, environ: Mapping[str, str]
) -> LockHolder:
    path = lock_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    me = LockHolder(
        user_of(environ),
        socket.gethostname(),
        os.getpid(),
        job,
        now.isoformat(timespec="seconds"),
        (now + timedelta(hours=hours)).isoformat(timespec="seconds"),
    )
    holder = read_holder(path)
    if holder is not None:
        if not holder.expired(now):
            raise LakeLocked(f"lake {lake} is locked by {holder.describe()}: wait for that run to finish")
        if not take_over_stale:
            raise LakeLocked(
                f"lake {lake} has an expired lock from {holder.describe()}; if that run is dead, "
                f"rerun with --set releases.take_over_stale_lock=true to take it over"
            )
        # Deliberate takeover of an expired lock: remove it, then race for it like anyone else.
        path.unlink(missing_ok=True)
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        holder = read_holder(path)
        raise LakeLocked(
            f"lake {lake} is locked by {holder.describe() if holder else 'another run'}"
        ) from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(asdict(me), handle)
    return me


def release(lake: str, me: LockHolder) -> None:
    """Remove the lock only if it is still ours (a takeover may have replaced it)."""
    path = lock_path(lake)
    if read_holder(path) == me:
        path.unlink(missing_ok=True)


@contextmanager
def lake_lock(
    lake: str, job: str, hours: float, take_over_stale: bool, environ: Mapping[str, str]
) -> Iterator[LockHolder]:
    me = acquire(lake, job, hours, take_over_stale, environ)
    try:
        yield me
    finally:
        release(lake, me)
