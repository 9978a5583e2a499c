"""What one raw file must supply and how its rows are checked (`FileFields`).

Each source's FileFields are part of its declaration in linkage.sources. Names are the spec's
column names (shared/specs/source-extracts.md); a site whose columns are named differently maps
them in `ingest.sources.<source>.people_columns` / `activity_columns`. Columns the spec lists but
nothing downstream uses (GP registration dates) are not read, so a site that does not send them
is not refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FileFields:
    """What one file must supply and how its rows are checked."""

    fields: tuple[str, ...]
    mandatory_ids: tuple[str, ...]  # blank -> missing_mandatory_id
    unique_key: tuple[str, ...] = ()  # repeated within the file -> duplicate_id (every copy)
    mandatory_dates: tuple[str, ...] = ()  # missing or bad -> quarantine
    optional_dates: tuple[str, ...] = ()  # bad when supplied -> quarantine
    closed_codes: dict[str, tuple[str, ...]] = field(
        default_factory=dict
    )  # field -> allowed (canonical spelling)
    optional_codes: tuple[str, ...] = ()  # closed-code fields that may be missing
