"""The Splink model in MLflow's model registry: register after training, approve by alias, load for linking.

QA approves a version with `python -m jobs.approve --version N`, which points the registry alias
`tracking.approved_alias` at it; link runs use that version unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from linkage.config import AppConfig
from linkage.errors import ConfigError
from linkage.tracking import RunContext, configure_mlflow

if TYPE_CHECKING:  # the harness imports the session factory: not needed at run time here
    from linkage.harness import CommandContext

MODEL_ARTIFACT = "splink_model"
MODEL_JSON = "splink_model.json"
# The wrapper needs only these at load time; naming them skips MLflow's slow requirement inference.
MODEL_REQUIREMENTS = ["splink==5.0.0", "pandas==2.3.3"]


class SplinkModel(mlflow.pyfunc.PythonModel):
    """Registry wrapper whose artifact is Splink's model JSON; predict lists the match weights per level."""

    def load_context(self, context) -> None:
        self.settings = json.loads(Path(context.artifacts[MODEL_ARTIFACT]).read_text(encoding="utf-8"))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return parameters_frame(self.settings)


def parameters_frame(settings: Mapping) -> pd.DataFrame:
    """m, u and match weight of every comparison level: the model's content, aggregate only."""
    import math

    rows = []
    for comparison in settings.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            m, u = level.get("m_probability"), level.get("u_probability")
            weight = math.log2(m / u) if m and u else None
            rows.append(
                {
                    "comparison": comparison.get("output_column_name"),
                    "level": level.get("label_for_charts"),
                    "m_probability": m,
                    "u_probability": u,
                    "match_weight": weight,
                }
            )
    return pd.DataFrame(rows)


def register_model(config: AppConfig, run: RunContext, model: Mapping) -> str:
    """Log the model JSON as a pyfunc model on the run and register it; returns the new version."""
    with tempfile.TemporaryDirectory(prefix="linkage-model-") as folder:
        path = Path(folder) / MODEL_JSON
        path.write_text(json.dumps(model, indent=2), encoding="utf-8")
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run.run_id:
            info = _log_model(config, path)
        else:
            with mlflow.start_run(run_id=run.run_id, nested=active is not None):
                info = _log_model(config, path)
    return str(info.registered_model_version)


def _log_model(config: AppConfig, path: Path):
    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=SplinkModel(),
        artifacts={MODEL_ARTIFACT: str(path)},
        registered_model_name=config.tracking.registered_model,
        pip_requirements=MODEL_REQUIREMENTS,
        await_registration_for=0,
    )


def _client(config: AppConfig) -> MlflowClient:
    configure_mlflow(config)
    return MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)


APPROVER_VARIABLES = ("LINKAGE_REVIEWER", "USER", "LOGNAME")


def approver_from(environ: Mapping[str, str]) -> str | None:
    """Who is approving: the login the job runs under (LINKAGE_REVIEWER names a reviewer on a shared account)."""
    return next((environ[name].strip() for name in APPROVER_VARIABLES if environ.get(name, "").strip()), None)


def approve_model(
    config: AppConfig, version: str | int, environ: Mapping[str, str] | None = None, how: str = "jobs.approve"
) -> None:
    """Point the approved alias at `version` and record on the version who approved it, when and how.

    ConfigError when the version does not exist, or (outside local mode) when the environment
    names no approving user.
    """
    client = _client(config)
    name = config.tracking.registered_model
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        raise ConfigError(f"model '{name}' has no version {version} in {config.tracking_uri_shown}") from None
    approver = approver_from(os.environ if environ is None else environ)
    if approver is None and config.environment != "local":
        raise ConfigError(
            f"no approving user: set one of {', '.join(APPROVER_VARIABLES)} in the environment "
            "(the approver is recorded on the model version)"
        )
    client.set_registered_model_alias(name, config.tracking.approved_alias, str(version))
    for key, value in {
        "approved_by": approver or "unknown",
        "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "approved_via": how,
        "approved_alias": config.tracking.approved_alias,
    }.items():
        client.set_model_version_tag(name, str(version), key, value)


def check_approval(config: AppConfig, version: str, allow_unapproved: bool) -> bool:
    """True when `version` carries the approved alias. Outside local mode linking with any other version
    needs an explicit --allow-unapproved (ConfigError otherwise); the caller tags such a run `unapproved`."""
    if approved_version(config) == str(version):
        return True
    if config.environment != "local" and not allow_unapproved:
        raise ConfigError(
            f"model version {version} of '{config.tracking.registered_model}' does not carry the alias "
            f"'{config.tracking.approved_alias}': approve it with `python -m jobs.approve --version {version}`, or "
            "pass --allow-unapproved to link with it anyway (the run is tagged unapproved)"
        )
    return False


def approved_version(config: AppConfig) -> str | None:
    """The version QA approved, or None when no version carries the alias (or nothing is registered)."""
    try:
        return str(
            _client(config)
            .get_model_version_by_alias(config.tracking.registered_model, config.tracking.approved_alias)
            .version
        )
    except MlflowException:
        return None


def latest_version(config: AppConfig) -> str:
    """The newest registered version of the configured model, from this configuration's store even when the process
    last pointed MLflow elsewhere (the bench runs several sizes, each with its own store, in one process);
    ConfigError if none."""
    versions = _client(config).search_model_versions(f"name = '{config.tracking.registered_model}'")
    if not versions:
        raise ConfigError(
            f"model '{config.tracking.registered_model}' has no version in {config.tracking_uri_shown}"
        )
    return str(max(int(v.version) for v in versions))


def version_to_use(config: AppConfig, requested: str | None) -> str:
    """The command line's version, else config linkage.model_version, else the approved one; ConfigError if none."""
    version = requested or config.linkage.model_version or approved_version(config)
    if version is None:
        raise ConfigError(
            f"no model version of '{config.tracking.registered_model}' carries the alias "
            f"'{config.tracking.approved_alias}': approve one with `python -m jobs.approve --version N` "
            "or name one with --model-version N"
        )
    return str(version)


def load_model_json(config: AppConfig, version: str) -> dict:
    """Splink's model JSON of a registered version."""
    _client(config)
    uri = f"models:/{config.tracking.registered_model}/{version}"
    try:
        with tempfile.TemporaryDirectory(prefix="linkage-model-") as folder:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder))
            found = sorted(local.rglob(MODEL_JSON))
            if not found:
                raise ConfigError(f"{uri} holds no {MODEL_JSON}: not a model registered by jobs.train")
            return json.loads(found[0].read_text(encoding="utf-8"))
    except MlflowException:
        raise ConfigError(f"model version {uri} not found in {config.tracking_uri_shown}") from None


APPROVE_DESCRIPTION = "Approve a registered Splink model version for link runs (sets the alias)."


def add_approve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", required=True, help="Model registry version to approve, e.g. 3.")


def approve(ctx: CommandContext) -> None:
    """`python -m jobs.approve --version N` (through the job harness, no Spark): set the approved alias."""
    config, environ = ctx.config, ctx.environ
    approve_model(config, ctx.args.version, environ)
    ctx.say(
        f"{config.tracking.registered_model} version {ctx.args.version} is now "
        f"'{config.tracking.approved_alias}' (approved by {approver_from(environ) or 'unknown'})"
    )


def approve_current_rules_and_corrections(spark, config: AppConfig, bench: str) -> str:
    """For the benches: register the approved model with this code's prediction blocking rules and fixed corrections
    (linkage.link.fields.with_current_rules_and_corrections, its estimates kept) as a new version, and approve it.
    Returns the version."""
    from linkage.lake import read_table
    from linkage.link.fields import populated_columns, populated_counts, with_current_rules_and_corrections
    from linkage.schemas import PEOPLE_STD
    from linkage.tracking import tracking_run

    populated = populated_columns(populated_counts(read_table(spark, str(config.paths.lake), PEOPLE_STD)))
    model = with_current_rules_and_corrections(load_model_json(config, approved_version(config)), populated)
    with tracking_run(config, job=f"{bench.replace(' ', '-')}-relink") as run:
        version = register_model(config, run, model)
    approve_model(config, version, {}, how=f"automatic ({bench})")
    return version
