"""Record linkage: NHS-number pass, Splink 5 model on Spark, stable person keys, review queue and QA.

`linkage.link.stage.run` is the link stage (`linkage.train.stage.run` trains the model this package
declares); the pipeline also calls `approve_model` and `approved_version`.
"""

from linkage.link.registry import approve_model, approved_version

__all__ = ["approve_model", "approved_version"]
