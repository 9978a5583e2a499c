"""The one Spark session factory used by every job, test and notebook.

Delta and Splink's similarity functions are JVM code: their jars must be on the driver's
classpath when the JVM starts. `make setup` fetches them once into ./jars and also writes
them into the venv's Spark `conf/spark-defaults.conf`, so `spark-submit jobs/x.py` finds them
too; nothing is resolved from the network when a session starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

from linkage.config import PROJECT_ROOT, AppConfig, SparkConfig
from linkage.errors import EnvironmentSetupError

JARS_DIR_ENV = "LINKAGE_JARS_DIR"
REQUIRED_JAR_PREFIXES = ("delta-spark_", "delta-storage-")


def jars_dir() -> Path:
    return Path(os.environ.get(JARS_DIR_ENV, PROJECT_ROOT / "jars"))


def required_jars() -> list[str]:
    """Absolute paths of the Delta jars fetched by setup plus Splink's similarity UDF jar."""
    from splink.backends.spark import similarity_jar_location

    folder = jars_dir()
    found = sorted(str(path) for path in folder.glob("*.jar")) if folder.is_dir() else []
    missing = [prefix for prefix in REQUIRED_JAR_PREFIXES if not any(Path(j).name.startswith(prefix) for j in found)]
    if missing:
        raise EnvironmentSetupError(
            f"Delta jars missing from {folder} ({', '.join(p.rstrip('_-') for p in missing)}): run `make setup` once "
            f"(it fetches them from Maven Central), or point {JARS_DIR_ENV} at a folder holding them"
        )
    return [*found, similarity_jar_location()]


def check_java() -> None:
    if os.environ.get("JAVA_HOME"):
        java = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        if java.exists():
            return
    if shutil.which("java") is None:
        raise EnvironmentSetupError("Java not found: install Java 17 (e.g. apt-get install openjdk-17-jre-headless) "
                                    "or set JAVA_HOME")


def session_settings(config: SparkConfig) -> dict[str, str]:
    """Every Spark setting the factory applies, defaults first so config can override them."""
    settings = {
        "spark.jars": ",".join(required_jars()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.default.parallelism": str(config.shuffle_partitions),
        # Delta rebuilds table state with 50 partitions by default: pure overhead on small tables.
        "spark.databricks.delta.snapshotPartitions": str(max(config.shuffle_partitions, 1)),
        "spark.scheduler.mode": "FAIR",
        "spark.driver.memory": config.driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        # Splink generates large SQL; whole-stage codegen can exceed the JVM's 64 KB method limit.
        "spark.sql.codegen.wholeStage": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={PROJECT_ROOT / 'conf' / 'log4j2.properties'}",
        # Python workers must use the driver's interpreter (the venv, with pyarrow and linkage),
        # not whatever `python3` is first on PATH. A cluster with another layout overrides it.
        "spark.pyspark.python": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    if config.local_dir:
        settings["spark.local.dir"] = config.local_dir
    settings.update(config.conf)
    return settings


def launched_by_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway through the environment."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark(config: SparkConfig) -> SparkSession:
    """Create (or reuse) the process's SparkSession with Delta and Splink ready.

    Under spark-submit its own --master and driver settings win (the JVM already runs with them);
    spark.master and spark.driver_memory from config apply when the job starts the JVM itself.
    """
    check_java()
    settings = session_settings(config)
    builder = SparkSession.builder.appName(config.app_name)
    if launched_by_spark_submit():
        for fixed_at_launch in ("spark.driver.memory", "spark.driver.extraJavaOptions", "spark.jars"):
            settings.pop(fixed_at_launch, None)
    else:
        builder = builder.master(config.master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(config.log_level)
    silence_query_context_loggers()
    _check_delta_loaded(spark)
    return spark


def silence_query_context_loggers() -> None:
    """PySpark 4 logs every captured Spark error, message included, to stderr; messages can quote
    data values (e.g. a failed cast). Jobs report errors redacted at their boundary instead."""
    for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        logging.getLogger(name).disabled = True


def _check_delta_loaded(spark: SparkSession) -> None:
    # Under spark-submit the JVM starts before this code runs: builder `spark.jars` then cannot
    # reach the driver's classpath, and Delta fails later with an obscure catalog error.
    try:
        jvm = spark._jvm  # noqa: SLF001
        jvm.java.lang.Thread.currentThread().getContextClassLoader().loadClass(
            "io.delta.sql.DeltaSparkSessionExtension")
    except Exception as error:  # py4j wraps ClassNotFoundException
        raise EnvironmentSetupError(
            "Delta classes are not on the driver classpath. Run `make setup` (it registers the jars in the venv's "
            "spark-defaults.conf) or pass them to spark-submit with --jars"
        ) from error


def lake_session(config: AppConfig, release: str | None = None) -> SparkSession:
    """build_spark plus the lake's names: `pseudonymised.<table>` and `cohorts.<table>` resolve to the
    published release (or to `release`, an earlier one by id). See linkage.releases.catalog."""
    from linkage.releases.catalog import register_catalog

    spark = build_spark(config.spark)
    register_catalog(spark, config.paths.lake, release)
    return spark


@contextmanager
def spark_session(config: SparkConfig) -> Iterator[SparkSession]:
    """Session for one job. Left running on exit when the caller (a test, the pipeline) owns it."""
    existing = SparkSession.getActiveSession()
    spark = build_spark(config)
    try:
        yield spark
    finally:
        if existing is None and os.environ.get("LINKAGE_KEEP_SPARK") != "1":
            spark.stop()
