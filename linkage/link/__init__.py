"""Record linkage: NHS-number pass, Splink 5 model on Spark, stable person keys, review queue and QA.

The pipeline calls `run_train`, `run_link`, `approve_model` and `approved_version`.
"""

from linkage.link.linking import run_link
from linkage.link.registry import approve_model, approved_version
from linkage.link.training import run_train

__all__ = ["approve_model", "approved_version", "run_link", "run_train"]
