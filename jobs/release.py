"""Releases of the lake: list them with their audits, publish one (with --override after a failed audit), roll back.

    python -m jobs.release list [--config conf/local.yaml] [--set paths.lake=DIR]
    python -m jobs.release publish --release r0003-20261201 [--override "reason recorded with your user"]
    python -m jobs.release rollback [--reason "why"]

No Spark: the manifest is read and written with the `deltalake` package. The user recorded with
an override or rollback is $LINKAGE_USER, else $USER.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from linkage.config import load_config
from linkage.errors import LinkageError
from linkage.harness import EXIT_BAD_INPUT, EXIT_OK, build_parser
from linkage.releases import operator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("command", choices=["list", "publish", "rollback"])
    parser.add_argument("--release", default=None, help="Release id to publish (see `list`).")
    parser.add_argument(
        "--override",
        default=None,
        help="Publish although an audit failed; the reason is recorded with your user.",
    )
    parser.add_argument("--reason", default=None, help="Why (recorded with a rollback).")


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = build_parser("release", __doc__.splitlines()[0], add_arguments)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:
        return EXIT_OK if exit_.code == 0 else EXIT_BAD_INPUT
    try:
        config = load_config(args.config, overrides=args.set)
        if args.command == "list":
            print("\n".join(operator.list_lines(config)))
        elif args.command == "publish":
            if not args.release:
                print(
                    "[release] error: publish needs --release ID (see `python -m jobs.release list`)",
                    file=sys.stderr,
                )
                return EXIT_BAD_INPUT
            operator.publish_release(config, args.release, args.override, environ)
            print(f"[release] published {args.release}" + (" (override recorded)" if args.override else ""))
        else:
            withdrawn, restored = operator.rollback(config, environ, args.reason)
            print(f"[release] rolled back {withdrawn}: analysts now see {restored}")
        return EXIT_OK
    except LinkageError as error:
        print(f"[release] error: {error}", file=sys.stderr, flush=True)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
