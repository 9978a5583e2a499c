"""Topic cohorts: declarations compiled to Spark, built in parallel, summaries under one disclosure policy.

`linkage.cohorts.stage.run` is the stage.
"""

from linkage.cohorts.builder import build_cohort, build_summary
from linkage.cohorts.declaration import Declaration, load_declaration
from linkage.cohorts.disclosure import apply_disclosure_control, with_totals

__all__ = [
    "Declaration",
    "apply_disclosure_control",
    "build_cohort",
    "build_summary",
    "load_declaration",
    "with_totals",
]
