"""Ingest: raw extracts -> restricted/people_std, restricted/<source>_activity_std and restricted/quarantine.

`run_ingest(ctx)` is the library body of jobs/ingest.py (and of the pipeline's ingest stage).
"""

from linkage.ingest.job import run_ingest

__all__ = ["run_ingest"]
