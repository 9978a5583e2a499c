"""Operator commands: list releases with their audits, publish a staged release (with a recorded
override when an audit failed), roll back to the previous release. No Spark needed."""

from __future__ import annotations

from collections.abc import Mapping

from linkage.config import AppConfig
from linkage.releases.cycle import after_publish
from linkage.releases.lock import lake_lock, user_of
from linkage.releases.manifest import (
    ReleaseError,
    append_event,
    current_release_id,
    published_stack,
    read_audits,
    read_events,
    releases,
    table_uri,
)


def list_lines(config: AppConfig) -> list[str]:
    lake = config.paths.lake
    events = read_events(lake)
    if not events:
        return [f"no releases in {lake}"]
    audits: dict[str, list[dict]] = {}
    for row in read_audits(lake):
        audits.setdefault(row["release_id"], []).append(row)
    lines = []
    for release in releases(events).values():
        marker = "*" if release.current else " "
        when = f"{release.staged_at:%Y-%m-%d %H:%M}" if release.staged_at else "?"
        lines.append(
            f"{marker} {release.release_id:<16} {release.status:<11} staged {when}  "
            f"{len(release.tables)} tables"
        )
        for row in audits.get(release.release_id, []):
            lines.append(f"    {'pass' if row['passed'] else 'FAIL'} {row['audit']:<20} {row['summary']}")
        for event in release.events:
            if event.reason:
                lines.append(f"    {event.event} by {event.actor}: {event.reason}")
    lines.append("(* = published: what analysts' names resolve to)")
    return lines


def publish_release(
    config: AppConfig, release_id: str, override: str | None, environ: Mapping[str, str]
) -> str:
    """Publish a staged, rejected or earlier release. A release whose audits failed needs an override reason."""
    from deltalake import DeltaTable

    lake = config.paths.lake
    with lake_lock(
        lake, "release publish", config.releases.lock_hours, config.releases.take_over_stale_lock, environ
    ):
        events = read_events(lake)
        known = releases(events)
        if release_id not in known:
            raise ReleaseError(f"no release '{release_id}' (have {', '.join(known) or 'none'})")
        release = known[release_id]
        if release.current:
            raise ReleaseError(f"release {release_id} is already the published release")
        if release.audits_passed is not True and not (override and override.strip()):
            raise ReleaseError(
                f"release {release_id} failed audit(s) {', '.join(release.audit_failures) or '(none run)'}:"
                f' publish it only with --override "reason" (the reason and your user are recorded)'
            )
        for table, version in release.tables.items():
            try:
                DeltaTable(table_uri(lake, table), version=version)
            except Exception as error:  # noqa: BLE001 - vacuumed or missing: say which table
                raise ReleaseError(
                    f"release {release_id} cannot be published: {table} version {version} is no "
                    f"longer readable (vacuumed?)"
                ) from error
        append_event(
            lake,
            events,
            release_id,
            "published",
            release.tables,
            release_id,
            audits_passed=release.audits_passed,
            audit_failures=release.audit_failures,
            actor=user_of(environ),
            reason=override.strip() if override else None,
        )
        after_publish(None, config, events)
    return release_id


def rollback(config: AppConfig, environ: Mapping[str, str], reason: str | None = None) -> tuple[str, str]:
    """Withdraw the published release; the one published before it becomes current. Returns (from, to)."""
    lake = config.paths.lake
    with lake_lock(
        lake, "release rollback", config.releases.lock_hours, config.releases.take_over_stale_lock, environ
    ):
        events = read_events(lake)
        stack = published_stack(events)
        current = current_release_id(events)
        if not current or len(stack) < 2:
            raise ReleaseError("no earlier published release to roll back to")
        previous = stack[-2]
        append_event(
            lake,
            events,
            current,
            "rolled_back",
            releases(events)[current].tables,
            previous,
            actor=user_of(environ),
            reason=reason,
        )
    return current, previous
