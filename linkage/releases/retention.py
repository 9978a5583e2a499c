"""Keep the last `releases.keep` published releases readable; vacuum every older table version.

Why not keep everything: two versions of a pseudonymised table can be differenced. A person whose
records changed between releases (a move, a new diagnosis, a merge of two keys) stands out in the
difference, and small differences defeat the disclosure control each release obeys on its own.
So old versions are removed once they are no longer part of a kept release. Releases staged after
the oldest kept one (e.g. rejected, awaiting an override) keep their versions too.
"""

from __future__ import annotations

from linkage.releases.manifest import ManifestEvent, published_stack, releases, table_uri


def kept_releases(events: list[ManifestEvent], keep: int) -> list[str]:
    """The last `keep` releases published (current first) plus any staged after the oldest of them."""
    order = [e.release_id for e in events if e.event == "published"]
    stack = published_stack(events)
    kept: list[str] = []
    for release_id in [*reversed(stack), *reversed(order)]:
        if release_id not in kept and len(kept) < keep:
            kept.append(release_id)
    if not kept:
        return []
    first_seq = min(e.seq for e in events if e.release_id in kept)
    later = [e.release_id for e in events if e.seq > first_seq and e.event in ("staged", "rejected")]
    return kept + [r for r in dict.fromkeys(later) if r not in kept]


def versions_to_keep(events: list[ManifestEvent], keep: int) -> dict[str, set[int]]:
    known = releases(events)
    kept: dict[str, set[int]] = {}
    for release_id in kept_releases(events, keep):
        for table, version in known[release_id].tables.items():
            kept.setdefault(table, set()).add(version)
    return kept


def vacuum_unkept_versions(lake: str, events: list[ManifestEvent], keep: int) -> dict[str, int]:
    """Remove the files only unkept versions need; returns files removed per table."""
    from deltalake import DeltaTable

    known = releases(events)
    if len([e for e in events if e.event == "published"]) <= keep and len(known) <= keep:
        return {}
    kept = versions_to_keep(events, keep)
    removed = {}
    for table in sorted({t for release in known.values() for t in release.tables}):
        versions = sorted(kept.get(table, set()))
        delta = DeltaTable(table_uri(lake, table))
        # Retention 0: the manifest, not file age, says which versions are still needed.
        removed[table] = len(
            delta.vacuum(
                retention_hours=0,
                dry_run=False,
                enforce_retention_duration=False,
                keep_versions=versions or None,
            )
        )
    return removed
