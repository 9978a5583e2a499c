"""`python -m jobs.review`: read the lake, then serve the review app on loopback behind a fresh access token.

The token is printed once, to standard output, and is not logged anywhere; Werkzeug's request
log (request lines, which name the pages visited) is switched off. The server is Werkzeug's
threaded WSGI server: one reviewer's browser on the same machine, not the internet.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from linkage.config import AppConfig
from linkage.errors import ConfigError
from linkage.harness import EXIT_BAD_INPUT, EXIT_OK, CommandContext, build_parser, run_command, run_job
from linkage.session import spark_session

DEFAULT_HOST = "127.0.0.1"
REVIEWER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without its per-request log line (paths and query strings stay out of logs)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - Werkzeug's signature
        # Werkzeug's own messages can quote a malformed request line: keep the kind only.
        if type == "error":
            logging.getLogger("linkage.review").error("review server: malformed request refused")


def reviewer_id(environ: Mapping[str, str]) -> str:
    """LINKAGE_REVIEWER, else the login name: an id, never typed into the app."""
    reviewer = environ.get("LINKAGE_REVIEWER") or getpass.getuser()
    if not REVIEWER_ID.match(reviewer):
        raise ConfigError(
            "LINKAGE_REVIEWER must be an id of letters, digits and . _ @ - (at most 64 characters)"
        )
    return reviewer


def add_review_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="Address to bind (default 127.0.0.1: this machine only)."
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="Port to serve on (default 8765; 0 picks a free one)."
    )
    parser.add_argument(
        "--model-version",
        default=None,
        help="Model version whose evidence is shown (default: linkage.model_version, else the approved one).",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="N",
        help="Instead of serving: draw a stratified sample of about N pairs of the latest link run "
        "into restricted/review_sample (for accuracy estimates), then exit.",
    )
    parser.add_argument("--seed", type=int, default=42, help="Seed of the sample draw (with --sample).")


def draw_sample(ctx) -> dict[str, Any]:
    """Job body of `jobs.review --sample N`: the sample is written in the job's own MLflow run."""
    from linkage.review.sampling import draw_review_sample

    counts = draw_review_sample(ctx.spark, ctx.config, ctx.run, ctx.args.sample, seed=ctx.args.seed)
    ctx.run.log_params({"sample_id": counts["sample_id"], "sample_link_run_id": counts["link_run_id"]})
    ctx.run.log_metrics({"sample.pairs": counts["pairs"], "sample.strata": counts["strata"]})
    ctx.say(
        f"drew {counts['pairs']} pairs in {counts['strata']} strata into restricted/review_sample "
        f"(sample {counts['sample_id']}); review them with `python -m jobs.review`"
    )
    return counts


def build_backend(spark, config: AppConfig, reviewer: str, model_version: str | None):
    """Load the model (when one is approved) and the lake's queues into a ReviewBackend."""
    from linkage.link.registry import load_model_json, version_to_use
    from linkage.review.app import ReviewBackend
    from linkage.review.evidence import term_frequency_columns
    from linkage.review.store import ReviewStore

    try:
        model = load_model_json(config, version_to_use(config, model_version))
    except ConfigError:
        if model_version:
            raise
        model = None  # no approved model yet: pairs are shown without the model's evidence
    store = ReviewStore(spark, config.paths.lake, reviewer, term_frequency_columns(model) if model else ())
    backend = ReviewBackend(store, model)
    backend.reload()
    return backend


def start_server(
    backend, reviewer: str, host: str = DEFAULT_HOST, port: int = 0, token: str | None = None
) -> tuple[BaseWSGIServer, str]:
    """A threaded Werkzeug server for the app (not yet serving) and its access token."""
    from linkage.review.app import create_app

    token = token or secrets.token_urlsafe(32)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(backend, token, reviewer)
    server = make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)
    return server, token


REVIEW_DESCRIPTION = (
    "Serve the clerical review app on this machine (127.0.0.1) behind an access token printed at start."
)


def review_command(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """`python -m jobs.review`: draw the review sample (--sample, a Spark job with its MLflow run) or serve the app.

    The arguments are parsed here only to choose between the two (argparse's own reading, so an abbreviated
    `--samp N` chooses as `--sample N` does); each path's harness parses them again."""
    try:
        args, _ = build_parser("review", REVIEW_DESCRIPTION, add_review_arguments).parse_known_args(
            list(argv)
        )
    except SystemExit as exit_:  # argparse already printed the usage error (or the help)
        return EXIT_OK if exit_.code == 0 else EXIT_BAD_INPUT
    if args.sample is not None:
        return run_job(
            "review_sample", "Draw the review sample.", draw_sample, argv, environ, add_review_arguments
        )
    return run_command("review", REVIEW_DESCRIPTION, serve_review, argv, environ, add_review_arguments)


def serve_review(ctx: CommandContext) -> None:
    """Read the work queues, then serve until interrupted."""
    args = ctx.args
    reviewer = reviewer_id(ctx.environ)
    with spark_session(ctx.config.spark) as spark:
        ctx.say("reading the work queues from the lake ...")
        backend = build_backend(spark, ctx.config, reviewer, args.model_version)
        server, token = start_server(backend, reviewer, args.host, args.port)
        counts = ", ".join(f"{name}: {len(pairs)} pairs" for name, pairs in backend.data.queues.items())
        ctx.say(f"{counts or 'no work queue in the lake yet'}; reviewer id {reviewer}")
        if args.host != DEFAULT_HOST:
            print(
                f"[review] warning: bound to {args.host}, not 127.0.0.1: other machines may reach it",
                file=sys.stderr,
                flush=True,
            )
        ctx.say(
            f"open http://{args.host}:{server.server_port}/ and sign in with this access token "
            f"(valid until the app stops):\n{token}"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    ctx.say("stopped")
