"""One MLflow run per job execution, nested under the pipeline's run when the pipeline calls the job.

`RunContext` carries what every table write is stamped with (run id, config hash, code
version) and logs through an explicit run id, so cohort threads can log safely at once
(MLflow's fluent "active run" is per thread).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from linkage import __version__
from linkage.config import PROJECT_ROOT, AppConfig
from linkage.mlflow_ui import ensure_qa_view

MLFLOW_PARAM_BATCH = 100  # MLflow accepts at most 100 params per batch call
# The experiment tag MLflow 3's UI reads to tell a model-training experiment (runs table) from a GenAI one.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


@dataclass(frozen=True)
class RunContext:
    run_id: str
    job: str
    config_hash: str
    code_version: str
    tracking_uri: str
    experiment_id: str
    client: MlflowClient = field(repr=False, compare=False)

    def stamp(self) -> dict[str, str]:
        """What each Delta commit records so a row can be traced to the run that wrote it."""
        return {
            "run_id": self.run_id,
            "job": self.job,
            "config_hash": self.config_hash,
            "code_version": self.code_version,
        }

    def log_metrics(self, metrics: Mapping[str, float | int | None], step: int = 0) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(_metric_key(k), float(v), now, step) for k, v in metrics.items() if v is not None]
        for start in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def log_params(self, params: Mapping[str, object]) -> None:
        items = [Param(_metric_key(k), str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), MLFLOW_PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + MLFLOW_PARAM_BATCH])

    def set_tags(self, tags: Mapping[str, object]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_dict(self, data: object, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def set_name(self, name: str) -> None:
        """Rename the run for what it is (e.g. `link · release R · model vN`): the runs table shows the name."""
        self.client.set_tag(self.run_id, "mlflow.runName", name)

    def set_description(self, markdown: str) -> None:
        """The run's description (MLflow's note), shown on the run page: headline figures and report links."""
        self.client.set_tag(self.run_id, "mlflow.note.content", markdown)

    def artifact_link(self, artifact_file: str) -> str:
        """A link the MLflow UI opens on this run's artifact (relative to the UI's root)."""
        return f"#/experiments/{self.experiment_id}/runs/{self.run_id}/artifacts/{artifact_file}"


def _metric_key(key: str) -> str:
    # MLflow keys allow letters, digits, _ - . / and space; group values may hold others.
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)[:250]


def git_commit() -> str:
    """Commit of the code that runs; LINKAGE_GIT_COMMIT wins (set in images built without .git)."""
    if os.environ.get("LINKAGE_GIT_COMMIT"):
        return os.environ["LINKAGE_GIT_COMMIT"]
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return f"{commit}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def configure_mlflow(config: AppConfig) -> str:
    """Point MLflow at the configured store and return the experiment id (created on first use)."""
    uri = config.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is not None:
        _prepare_for_qa(client, experiment.experiment_id, experiment.tags)
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # Keep artifacts beside the local store rather than in whatever folder the job started in.
        artifact_location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    try:
        experiment_id = client.create_experiment(
            config.tracking.experiment, artifact_location=artifact_location
        )
    except mlflow.exceptions.MlflowException:
        # Another process created it between our look-up and create.
        experiment_id = client.get_experiment_by_name(config.tracking.experiment).experiment_id
    _prepare_for_qa(client, experiment_id, {})
    return experiment_id


def _prepare_for_qa(client: MlflowClient, experiment_id: str, tags: Mapping[str, str]) -> None:
    """A model-training experiment (the UI opens on the runs table) with the saved QA view of link runs."""
    if tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    ensure_qa_view(client, experiment_id, dict(tags))


@contextmanager
def tracking_run(config: AppConfig, job: str) -> Iterator[RunContext]:
    """Start the job's MLflow run (nested when a parent run is active), tagged and parameterised."""
    experiment_id = configure_mlflow(config)
    parent = mlflow.active_run()
    commit = git_commit()
    code_version = f"{__version__}+{commit}"
    tags = {
        "job": job,
        "git_commit": commit,
        "code_version": code_version,
        "config_hash": config.config_hash(),
        "environment": config.environment,
    }
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=job, nested=parent is not None, tags=tags
    ) as run:
        context = RunContext(
            run_id=run.info.run_id,
            job=job,
            config_hash=tags["config_hash"],
            code_version=code_version,
            tracking_uri=config.tracking_uri,
            experiment_id=experiment_id,
            client=MlflowClient(config.tracking_uri),
        )
        context.log_params(config.flat_params())
        context.log_text(json.dumps(config.public_dump(), indent=2, sort_keys=True), "config.json")
        yield context
