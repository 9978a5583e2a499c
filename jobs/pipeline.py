"""Run the whole pipeline: ingest, train (when no model is approved), link, pseudonymise, cohorts.

python -m jobs.pipeline [--config conf/local.yaml] [--set paths.raw=DIR --set paths.lake=DIR ...]
spark-submit jobs/pipeline.py --config conf/cluster.yaml
"""

import os
import sys
from collections.abc import Mapping, Sequence

from linkage import pipeline
from linkage.harness import run_job
from linkage.releases.cycle import released


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_job("pipeline", __doc__.splitlines()[0], released(pipeline.run), argv, environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
