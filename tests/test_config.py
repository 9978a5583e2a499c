"""Configuration: merge order, typed values, and errors that name the file, the key and what is allowed."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from linkage.config import PROJECT_ROOT, AppConfig, load_config
from linkage.config.loader import overlay_chain
from linkage.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def conf_dir(tmp_path) -> Path:
    """A conf folder holding the real base.yaml, so overlays are tested against the shipped defaults.

    The shipped base states no environment (each overlay must); here it says local so that these
    overlays, which test other keys, need not (tests/test_safety_config.py covers the rule)."""
    folder = tmp_path / "conf"
    folder.mkdir()
    base = (PROJECT_ROOT / "conf" / "base.yaml").read_text()
    (folder / "base.yaml").write_text(f"environment: local\n{base}", encoding="utf-8")
    return folder


def test_default_overlay_is_local_and_paths_resolve_against_project_root():
    config = load_config()
    assert config.environment == "local"
    assert config.paths.lake == str(PROJECT_ROOT / "lake")
    assert config.tracking_uri == f"sqlite:///{PROJECT_ROOT / 'lake' / 'mlflow.db'}"


def test_overlay_then_set_override_in_that_order(conf_dir):
    overlay = write(conf_dir / "site.yaml", "spark:\n  shuffle_partitions: 8\n")
    config = load_config(
        overlay, overrides=["spark.shuffle_partitions=3", "spark.conf.spark.sql.ansi.enabled=true"]
    )
    assert config.spark.shuffle_partitions == 3
    # spark.conf keys keep their dots: everything after spark.conf. is one key
    assert config.spark.conf == {"spark.sql.ansi.enabled": "true"}


def test_set_paths_are_relative_to_the_working_directory(conf_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = load_config(conf_dir / "base.yaml", overrides=["paths.raw=extract"])
    assert config.paths.raw == str(tmp_path / "extract")


def test_unknown_key_names_the_file_and_the_key(conf_dir):
    overlay = write(conf_dir / "bad.yaml", "spark:\n  shuffle_partition: 8\n")
    with pytest.raises(ConfigError) as error:
        load_config(overlay)
    assert f"{overlay}: unknown key 'spark.shuffle_partition'" in str(error.value)


def test_wrong_type_names_the_source_key_and_what_is_allowed(conf_dir):
    with pytest.raises(ConfigError) as error:
        load_config(conf_dir / "base.yaml", overrides=["spark.shuffle_partitions=many"])
    message = str(error.value)
    assert "--set: spark.shuffle_partitions" in message
    assert "integer" in message


def test_cross_field_rule_names_the_file_that_broke_it(conf_dir):
    overlay = write(conf_dir / "thr.yaml", "linkage:\n  thresholds:\n    upper: 0.4\n")
    with pytest.raises(ConfigError) as error:
        load_config(overlay)
    assert f"{overlay}: linkage.thresholds: upper must be > lower, got 0.4 <= 0.5" in str(error.value)


def test_out_of_range_value_is_refused(conf_dir):
    with pytest.raises(ConfigError, match=r"cohorts\.disclosure\.rounding_base"):
        load_config(conf_dir / "base.yaml", overrides=["cohorts.disclosure.rounding_base=0"])


def test_missing_overlay_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"{missing}: configuration file not found"):
        load_config(missing)


def test_invalid_yaml_names_the_file_and_line(conf_dir):
    overlay = write(conf_dir / "broken.yaml", "spark:\n  master: [local\n")
    with pytest.raises(ConfigError, match=rf"{overlay}: line \d+ is not valid YAML"):
        load_config(overlay)


def test_overlay_that_is_not_a_mapping_is_refused(conf_dir):
    overlay = write(conf_dir / "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(overlay)


def test_malformed_set_is_refused():
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config(None, overrides=["spark.master"])


def test_non_spark_key_in_spark_conf_is_refused():
    with pytest.raises(ConfigError, match="is not a Spark setting"):
        load_config(None, overrides=["spark.conf.foo=bar"])


def test_config_is_frozen_and_hash_follows_content():
    first = load_config()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on assignment
        first.spark.shuffle_partitions = 9
    assert first.config_hash() == load_config().config_hash()
    assert first.config_hash() != load_config(None, overrides=["spark.shuffle_partitions=9"]).config_hash()


def test_shipped_overlays_all_validate():
    for name in ("local", "docker", "cluster"):
        assert load_config(PROJECT_ROOT / "conf" / f"{name}.yaml").environment == name


# ---------------------------------------------------------------------------------------------
# Every default has one home: the models. base.yaml holds what has none; overlays only differences.

REQUIRED = "<required: no default>"


def flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value, JSON-normalised (dates as ISO text, tuples as lists); an empty mapping is a value."""
    items: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            items |= flat(value, f"{prefix}{key}.")
        else:
            items[f"{prefix}{key}"] = json.loads(json.dumps(value, default=str))
    return items


def model_defaults() -> dict[str, Any]:
    """Every default of the models, flattened; required keys hold a placeholder no file would state."""
    required = {"environment": "local", "paths": {"raw": REQUIRED, "lake": REQUIRED}}
    defaults = flat(AppConfig.model_validate(required).model_dump(mode="json"))
    del defaults["environment"]  # required too: each overlay states it
    return defaults


def restated(layer: Mapping[str, Any], inherited: Mapping[str, Any]) -> list[str]:
    return sorted(key for key, value in flat(layer).items() if key in inherited and inherited[key] == value)


def read_conf(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "conf" / name).read_text(encoding="utf-8")) or {}


def test_restated_finds_a_value_equal_to_the_inherited_one():
    inherited = {"spark.master": "local[*]", "spark.conf": {}, "cohorts.index_date": "2026-06-30"}
    layer = {
        "spark": {"master": "local[*]", "conf": {}},
        "cohorts": {"index_date": yaml.safe_load("2026-06-30")},
    }
    assert restated(layer, inherited) == ["cohorts.index_date", "spark.conf", "spark.master"]
    assert restated({"spark": {"master": "local[2]"}}, inherited) == []


def test_base_states_no_default_and_overlays_only_what_differs():
    defaults = model_defaults()
    base = read_conf("base.yaml")
    assert restated(base, defaults) == [], "conf/base.yaml restates model defaults"
    inherited = defaults | flat(base)
    for overlay in ("local.yaml", "docker.yaml", "docker-trial.yaml", "cluster.yaml"):
        layers = [content for _, content in overlay_chain(PROJECT_ROOT / "conf" / overlay)]
        above = inherited.copy()
        for layer in layers:  # each file against base, the defaults and the overlays it extends
            assert restated(layer, above) == [], f"conf/{overlay} restates what it inherits"
            above |= flat(layer)


def test_an_overlay_extends_another_and_says_only_how_it_differs(tmp_path):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    write(conf_dir / "base.yaml", "paths:\n  raw: data/raw\n  lake: data/lake\n")
    write(
        conf_dir / "site.yaml", "environment: docker\nspark:\n  shuffle_partitions: 8\n  master: local[4]\n"
    )
    write(
        conf_dir / "site-trial.yaml", "extends: site.yaml\nenvironment: local\nspark:\n  master: local[2]\n"
    )
    config = load_config(conf_dir / "site-trial.yaml")
    assert (config.environment, config.spark.shuffle_partitions, config.spark.master) == (
        "local",
        8,
        "local[2]",
    )
    assert load_config(conf_dir / "site.yaml").environment == "docker"  # the parent is unchanged

    write(conf_dir / "loop-a.yaml", "extends: loop-b.yaml\nenvironment: local\n")
    write(conf_dir / "loop-b.yaml", "extends: loop-a.yaml\n")
    with pytest.raises(ConfigError, match="goes round in a circle"):
        load_config(conf_dir / "loop-a.yaml")
    write(conf_dir / "orphan.yaml", "extends: gone.yaml\nenvironment: local\n")
    with pytest.raises(ConfigError, match="gone.yaml: configuration file not found") as missing:
        load_config(conf_dir / "orphan.yaml")
    assert "orphan.yaml" in str(missing.value)  # which overlay names it


def test_link_qa_takes_its_reference_date_from_its_own_setting_not_the_generator():
    # Truth metrics and review sample groups band ages in linkage.qa_reference_date's year: a real
    # extract's QA must not depend on how the synthetic generator is configured.
    config = load_config(None, overrides=["synthetic.reference_date=2030-01-01"])
    assert (
        config.linkage.qa_reference_date == config.cohorts.index_date
    )  # both default to the generator's date
    assert config.linkage.qa_reference_date != config.synthetic.reference_date
    readers = [
        *(PROJECT_ROOT / "linkage" / "link").glob("*.py"),
        PROJECT_ROOT / "linkage" / "review" / "sampling.py",
    ]
    assert [path.name for path in readers if ".synthetic." in path.read_text(encoding="utf-8")] == []


def test_java_options_are_appended_to_the_factorys_own():
    from linkage.session import session_settings

    default = session_settings(load_config(None).spark)
    quick = session_settings(
        load_config(None, overrides=["spark.java_options=-XX:TieredStopAtLevel=1"]).spark
    )
    # Appended: the factory's own log4j options stay in force.
    assert (
        quick["spark.driver.extraJavaOptions"]
        == f"{default['spark.driver.extraJavaOptions']} -XX:TieredStopAtLevel=1"
    )
    assert "TieredStopAtLevel" not in default["spark.driver.extraJavaOptions"]


def test_the_driver_runs_the_throughput_collector_unless_the_config_names_another():
    from linkage.session import THROUGHPUT_GC, session_settings

    default = session_settings(load_config(None).spark)["spark.driver.extraJavaOptions"].split()
    assert THROUGHPUT_GC == "-XX:+UseParallelGC"
    assert THROUGHPUT_GC in default
    # The JVM refuses to start with two collectors: the configured one replaces the default.
    chosen = session_settings(
        load_config(None, overrides=["spark.java_options=-Xmx1g -XX:+UseSerialGC"]).spark
    )["spark.driver.extraJavaOptions"].split()
    assert "-XX:+UseSerialGC" in chosen
    assert THROUGHPUT_GC not in chosen


def test_generated_code_of_any_size_is_compiled_on_the_driver_and_the_executors():
    from linkage.session import CODE_CACHE, JIT_HUGE_METHODS, session_settings

    settings = session_settings(load_config(None).spark)
    assert JIT_HUGE_METHODS == "-XX:-DontCompileHugeMethods"
    assert CODE_CACHE == "-XX:ReservedCodeCacheSize=512m"
    for options in (settings["spark.driver.extraJavaOptions"], settings["spark.executor.extraJavaOptions"]):
        assert {JIT_HUGE_METHODS, CODE_CACHE} <= set(options.split())
    # A code cache size in the config comes after the default: the JVM takes the last one.
    chosen = session_settings(
        load_config(None, overrides=["spark.java_options=-XX:ReservedCodeCacheSize=1g"]).spark
    )["spark.driver.extraJavaOptions"].split()
    assert chosen.index("-XX:ReservedCodeCacheSize=1g") > chosen.index(CODE_CACHE)
