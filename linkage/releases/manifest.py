"""The release manifest: one append-only Delta table saying which table versions make each release.

`<lake>/releases/manifest` holds one row per event (staged, published, rejected, rolled_back).
Every row carries its release's full `zone/table -> Delta version` map and `current_release`,
the release analysts see once that row is committed. Publishing or rolling back is therefore
ONE append, i.e. one Delta commit: a reader resolving names sees every table of the new release
or every table of the old one, never a mix.

This module needs no Spark (only `deltalake` and `pyarrow`), so analysts without a JVM resolve
names through it too (see `linkage.catalog`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from linkage.errors import LinkageError

MANIFEST = "releases/manifest"
AUDITS = "releases/audits"
ANALYST_ZONES = ("pseudonymised", "cohorts")
EVENTS = ("staged", "published", "rejected", "rolled_back")

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("release_id", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("current_release", pa.string()),
        pa.field("tables", pa.map_(pa.string(), pa.int64())),
        pa.field("audits_passed", pa.bool_()),
        pa.field("audit_failures", pa.list_(pa.string())),
        pa.field("run_id", pa.string()),
        pa.field("actor", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("at", pa.timestamp("us", tz="UTC")),
    ]
)

AUDIT_SCHEMA = pa.schema(
    [
        pa.field("release_id", pa.string(), nullable=False),
        pa.field("audit", pa.string(), nullable=False),
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("summary", pa.string()),
        pa.field("counts", pa.string()),  # JSON object of aggregate counts, never values
        pa.field("run_id", pa.string()),
        pa.field("at", pa.timestamp("us", tz="UTC")),
    ]
)


class ReleaseError(LinkageError):
    """A release operation cannot be done as asked (unknown release, nothing to roll back to)."""

    exit_code = 2


@dataclass(frozen=True)
class ManifestEvent:
    seq: int
    release_id: str
    event: str
    current_release: str | None
    tables: dict[str, int]
    audits_passed: bool | None = None
    audit_failures: tuple[str, ...] = ()
    run_id: str | None = None
    actor: str | None = None
    reason: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Release:
    release_id: str
    status: str  # its latest event: staged, published, rejected or rolled_back
    tables: dict[str, int]
    audits_passed: bool | None
    audit_failures: tuple[str, ...]
    staged_at: datetime | None
    published_at: datetime | None
    current: bool
    events: tuple[ManifestEvent, ...] = field(default=(), repr=False)


def lake_path(lake: str, relative: str) -> str:
    return f"{str(lake).rstrip('/')}/{relative}"


def table_uri(lake: str, table: str) -> str:
    """Absolute location of `zone/name` under the lake (what Spark and deltalake open)."""
    if "://" in str(lake):
        return lake_path(lake, table)
    return str(Path(lake).resolve() / table)


def read_arrow(uri: str, version: int | None = None) -> pa.Table:
    """A Delta table (at a version) as a pyarrow Table.

    deltalake's own readers (`to_pyarrow_table`, `to_pyarrow_dataset`) leave threads behind that abort the
    interpreter at exit ("terminate called without an active exception", exit 134; delta-rs #2184): 8 of 15
    runs of `python -m jobs.release list`, still 2 of 30 single-threaded. Reading the version's parquet files
    with pyarrow's own dataset exited cleanly 30 of 30. That is exact only for files that are the whole
    truth: not for partitioned tables (values live in folder names), deletion vectors or column mapping, which keep the
    deltalake reader. The lake's tables are neither.
    """
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    table = DeltaTable(uri, version=version)
    features = table.protocol().reader_features or []
    mapped = table.metadata().configuration.get("delta.columnMapping.mode", "none") != "none"
    if table.metadata().partition_columns or "deletionVectors" in features or mapped:
        return table.to_pyarrow_dataset().to_table(use_threads=False)
    return ds.dataset(
        table.file_uris(), format="parquet", schema=pa.schema(table.schema().to_arrow())
    ).to_table()


def read_events(lake: str) -> list[ManifestEvent]:
    """Every manifest row in commit order; [] when the lake has no manifest yet."""
    from deltalake.exceptions import TableNotFoundError

    try:
        rows = read_arrow(table_uri(lake, MANIFEST)).to_pylist()
    except TableNotFoundError:
        return []
    events = [
        ManifestEvent(
            seq=row["seq"],
            release_id=row["release_id"],
            event=row["event"],
            current_release=row["current_release"],
            tables=dict(row["tables"] or []),
            audits_passed=row["audits_passed"],
            audit_failures=tuple(row["audit_failures"] or ()),
            run_id=row["run_id"],
            actor=row["actor"],
            reason=row["reason"],
            at=row["at"],
        )
        for row in rows
    ]
    return sorted(events, key=lambda event: event.seq)


def current_release_id(events: list[ManifestEvent]) -> str | None:
    return events[-1].current_release if events else None


def releases(events: list[ManifestEvent]) -> dict[str, Release]:
    """Each release by id, in the order first staged."""
    current = current_release_id(events)
    grouped: dict[str, list[ManifestEvent]] = {}
    for event in events:
        grouped.setdefault(event.release_id, []).append(event)
    result = {}
    for release_id, own in grouped.items():
        audited = [e for e in own if e.audits_passed is not None]
        published = [e.at for e in own if e.event == "published"]
        result[release_id] = Release(
            release_id=release_id,
            status=own[-1].event,
            tables=own[0].tables,
            audits_passed=audited[-1].audits_passed if audited else None,
            audit_failures=audited[-1].audit_failures if audited else (),
            staged_at=own[0].at,
            published_at=published[-1] if published else None,
            current=release_id == current,
            events=tuple(own),
        )
    return result


def published_stack(events: list[ManifestEvent]) -> list[str]:
    """Releases in publication order with rolled-back ones removed: the last is current, the one before it
    is what a rollback restores."""
    stack: list[str] = []
    for event in events:
        if event.event == "published":
            stack = [r for r in stack if r != event.release_id] + [event.release_id]
        elif event.event == "rolled_back" and stack and stack[-1] == event.release_id:
            stack.pop()
    return stack


def release_tables(lake: str, release_id: str | None = None) -> tuple[str | None, dict[str, int]]:
    """(release id, zone/table -> version) of the given release, or of the published one when None."""
    events = read_events(lake)
    wanted = release_id or current_release_id(events)
    if wanted is None:
        return None, {}
    known = releases(events)
    if wanted not in known:
        raise ReleaseError(
            f"no release '{wanted}' in {lake_path(lake, MANIFEST)} (have {', '.join(known) or 'none'})"
        )
    return wanted, dict(known[wanted].tables)


def next_release_id(events: list[ManifestEvent], now: datetime | None = None) -> str:
    """r<number>-<UTC date>: sorts in staging order and says when at a glance."""
    number = len({event.release_id for event in events}) + 1
    return f"r{number:04d}-{(now or datetime.now(UTC)):%Y%m%d}"


def append_event(
    lake: str,
    events: list[ManifestEvent],
    release_id: str,
    event: str,
    tables: dict[str, int],
    current_release: str | None,
    **details: Any,
) -> ManifestEvent:
    """Append one manifest row: one Delta commit. The caller holds the lake lock (seq is max + 1)."""
    from deltalake import write_deltalake

    if event not in EVENTS:
        raise ValueError(f"unknown manifest event {event}")
    row = ManifestEvent(
        seq=(events[-1].seq + 1) if events else 1,
        release_id=release_id,
        event=event,
        current_release=current_release,
        tables=dict(sorted(tables.items())),
        at=datetime.now(UTC),
        **details,
    )
    record = {name: getattr(row, name) for name in MANIFEST_SCHEMA.names}
    record["tables"] = list(row.tables.items())
    record["audit_failures"] = list(row.audit_failures)
    write_deltalake(
        table_uri(lake, MANIFEST), pa.Table.from_pylist([record], schema=MANIFEST_SCHEMA), mode="append"
    )
    events.append(row)
    return row


def append_audits(lake: str, release_id: str, run_id: str | None, results: list[Any]) -> None:
    """One row per audit (name, passed, summary, counts as JSON) in one commit."""
    from deltalake import write_deltalake

    now = datetime.now(UTC)
    rows = [
        {
            "release_id": release_id,
            "audit": r.name,
            "passed": r.passed,
            "summary": r.summary,
            "counts": json.dumps(r.counts, sort_keys=True),
            "run_id": run_id,
            "at": now,
        }
        for r in results
    ]
    write_deltalake(table_uri(lake, AUDITS), pa.Table.from_pylist(rows, schema=AUDIT_SCHEMA), mode="append")


def read_audits(lake: str, release_id: str | None = None) -> list[dict[str, Any]]:
    from deltalake.exceptions import TableNotFoundError

    try:
        rows = read_arrow(table_uri(lake, AUDITS)).to_pylist()
    except TableNotFoundError:
        return []
    return [row for row in rows if release_id is None or row["release_id"] == release_id]
