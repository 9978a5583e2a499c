"""Ingest: raw extracts -> restricted/people_std, restricted/<source>_activity_std and restricted/quarantine.

`linkage.ingest.stage.run(ctx)` is the library body of jobs/ingest.py (and of the pipeline's
ingest stage). The package itself imports nothing, so linkage.sources can use its field checks and
activity standardisers while the job reads the registry (no import cycle).
"""
