"""Safety switches: environment never silently local, disclosure control and local mode not changeable by
--set outside local mode, scratch inside the restricted zone, secrets never in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from linkage.config import PROJECT_ROOT, load_config
from linkage.errors import ConfigError
from linkage.harness import StageResult, run_job
from linkage.tracking import tracking_run


@pytest.fixture
def conf_dir(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "base.yaml").write_text((PROJECT_ROOT / "conf" / "base.yaml").read_text(), encoding="utf-8")
    return folder


def test_base_configuration_does_not_choose_an_environment():
    assert "environment" not in yaml.safe_load(
        (PROJECT_ROOT / "conf" / "base.yaml").read_text(encoding="utf-8")
    )


def test_an_overlay_that_states_no_environment_is_refused_unless_its_name_says_it(conf_dir):
    (conf_dir / "site.yaml").write_text("paths: {raw: /srv/raw, lake: /srv/lake}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="site.yaml: says no `environment`"):
        load_config(conf_dir / "site.yaml")
    (conf_dir / "cluster.yaml").write_text("paths: {raw: /srv/raw, lake: /srv/lake}\n", encoding="utf-8")
    config = load_config(conf_dir / "cluster.yaml")
    assert config.environment == "cluster" and "cluster.yaml (file name)" in config.environment_origin
    (conf_dir / "site.yaml").write_text("environment: docker\npaths: {raw: /srv/raw, lake: /srv/lake}\n")
    assert load_config(conf_dir / "site.yaml").environment == "docker"


def test_outside_local_mode_set_cannot_loosen_disclosure_control_or_switch_to_local():
    cluster = PROJECT_ROOT / "conf" / "cluster.yaml"
    with pytest.raises(ConfigError, match="cohorts.disclosure.suppress_max: disclosure control"):
        load_config(cluster, overrides=["cohorts.disclosure.suppress_max=0"])
    with pytest.raises(ConfigError, match="--set environment=local"):
        load_config(cluster, overrides=["environment=local"])
    assert (
        load_config(None, overrides=["cohorts.disclosure.suppress_max=0"]).cohorts.disclosure.suppress_max
        == 0
    )
    assert load_config(None, overrides=["environment=cluster"]).environment == "cluster"  # stricter is fine


def test_scratch_outside_the_restricted_zone_is_a_config_error(tmp_path):
    lake = tmp_path / "lake"
    with pytest.raises(ConfigError, match="paths.scratch must be a folder inside"):
        load_config(None, overrides=[f"paths.lake={lake}", f"paths.scratch={tmp_path / 'scratch'}"])
    with pytest.raises(ConfigError, match="paths.scratch"):
        load_config(None, overrides=[f"paths.lake={lake}", f"paths.scratch={lake / 'pseudonymised' / 'x'}"])
    inside = load_config(
        None, overrides=[f"paths.lake={lake}", f"paths.scratch={lake / 'restricted' / 'tmp'}"]
    )
    assert inside.paths.scratch_dir == str(lake / "restricted" / "tmp")


SECRETS = [
    "spark.conf.spark.hadoop.fs.s3a.secret.key=S3CR3T-VALUE",
    "spark.conf.spark.hadoop.fs.s3a.access.key=AKIAEXAMPLE",
    "spark.conf.spark.ssl.keyPassword=PW-VALUE",
    "spark.conf.spark.authenticate.secret=AUTH-VALUE",
]


def test_secrets_in_spark_conf_and_tracking_uri_never_reach_mlflow(test_overrides):
    store = test_overrides[[o.split("=")[0] for o in test_overrides].index("tracking.uri")].split("=", 1)[1]
    config = load_config(None, overrides=[*test_overrides, *SECRETS, "spark.conf.spark.executor.cores=2"])
    with tracking_run(config, job="secrets-probe") as run:
        run_id = run.run_id
    client = MlflowClient(store)
    recorded = client.get_run(run_id)
    config_json = Path(client.download_artifacts(run_id, "config.json")).read_text(encoding="utf-8")
    text = json.dumps(recorded.data.params) + json.dumps(recorded.data.tags) + config_json
    for value in ("S3CR3T-VALUE", "AKIAEXAMPLE", "PW-VALUE", "AUTH-VALUE"):
        assert value not in text
    assert recorded.data.params["spark.conf.spark.executor.cores"] == "2"
    assert recorded.data.params["spark.conf.spark.hadoop.fs.s3a.secret.key"] == "<masked>"
    with_user = load_config(None, overrides=["tracking.uri=https://alice:hunter2@mlflow.example:5000"])
    assert "hunter2" not in json.dumps(with_user.flat_params()) and "alice" not in json.dumps(
        with_user.public_dump()
    )
    assert "hunter2" not in with_user.tracking_uri_shown


def test_every_job_prints_the_environment_and_where_it_came_from(spark, test_overrides, capsys):
    argv = [arg for item in test_overrides for arg in ("--set", item)]
    assert run_job("probe", "prints the environment", lambda ctx: StageResult(), argv, {}) == 0
    assert (
        f"[probe] environment: local (from {PROJECT_ROOT / 'conf' / 'local.yaml'})" in capsys.readouterr().out
    )
