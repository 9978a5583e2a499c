"""Frames computed once and cut from their plans, for the link job's multi-step work.

A persisted DataFrame keeps its whole logical plan: every later query built on it is analysed
and optimised over that plan again, and matched against the cache by canonicalising it. The
compiled scorer's plan (a self-join per blocking rule and a CASE per comparison level) takes
seconds to analyse, so with the scores only persisted, each of the link job's later counts and
writes paid those seconds again: on a 300-person extract the link job's "cluster and key" and "write
spine" stages took 35 s and 43 s, and 7 s and 8 s once the scores and edges were checkpointed. A
checkpoint's plan is a scan of the stored rows.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame


def materialised(df: DataFrame) -> DataFrame:
    """df computed once and stored, with a plan that is only a scan of what was stored.

    A reliable checkpoint (files in the SparkContext's checkpoint folder, the run's restricted scratch
    space under linkage.link.model.splink_backend) when the session has one, so a lost executor does not
    fail the job; else a local checkpoint (executor storage). A reliable checkpoint writes in a second
    pass over its input: the frame is cached for that pass so it is computed once, not twice.
    """
    if not df.sparkSession.sparkContext.getCheckpointDir():
        return df.localCheckpoint(eager=True)
    cached = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return cached.checkpoint(eager=True)
    finally:
        cached.unpersist()
