"""Topic cohorts: declarations compiled to Spark, built in parallel, summaries under one disclosure policy."""

from linkage.cohorts.builder import build_cohort, build_summary
from linkage.cohorts.declaration import Declaration, load_declaration
from linkage.cohorts.disclosure import apply_disclosure_control, with_totals
from linkage.cohorts.runner import CohortsFailed, cohorts_job, run_cohorts

__all__ = [
    "CohortsFailed",
    "Declaration",
    "apply_disclosure_control",
    "build_cohort",
    "build_summary",
    "cohorts_job",
    "load_declaration",
    "run_cohorts",
    "with_totals",
]
