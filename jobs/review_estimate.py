"""Estimate precision and recall (95% CIs, overall and by group) from the reviewed sample; log them to MLflow."""

import os
import sys
from collections.abc import Mapping, Sequence

from linkage.harness import run_job
from linkage.review import stage


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_job("review_estimate", __doc__.splitlines()[0], stage.run, argv, environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
