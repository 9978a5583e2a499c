"""restricted/people_std as train and link read it: pinned at the version current when the job started."""

from __future__ import annotations

from pyspark.sql import DataFrame

from linkage.errors import InputError
from linkage.harness import JobContext
from linkage.lake import read_table, table_exists
from linkage.releases.cycle import log_pinned, pinned_versions
from linkage.schemas import PEOPLE_STD


def read_people(ctx: JobContext) -> DataFrame:
    if not table_exists(ctx.spark, ctx.config.paths.lake, PEOPLE_STD):
        raise InputError(
            f"{ctx.config.paths.lake}/restricted/people_std not found: run `python -m jobs.ingest` first"
        )
    # Pinned: the version current now is read for the whole job and logged, whatever commits meanwhile.
    versions = pinned_versions(ctx.spark, ctx.config.paths.lake, [PEOPLE_STD])
    log_pinned(ctx.run, versions)
    return read_table(ctx.spark, ctx.config.paths.lake, PEOPLE_STD, version=versions["restricted/people_std"])
