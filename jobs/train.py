"""Train the Splink model on restricted/people_std, log it to MLflow and register a new model version."""

import os
import sys
from collections.abc import Mapping, Sequence

from linkage.harness import run_job
from linkage.train import stage


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    return run_job("train", __doc__.splitlines()[0], stage.run, argv, environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
