"""The one Spark session factory used by every job, test and notebook.

Delta and Splink's similarity functions are JVM code: their jars must be on the driver's
classpath when the JVM starts. `make setup` fetches them once into ./jars and also writes
them into the venv's Spark `conf/spark-defaults.conf`, so `spark-submit jobs/x.py` finds them
too; nothing is resolved from the network when a session starts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from linkage.config import PROJECT_ROOT, AppConfig, SparkConfig
from linkage.errors import EnvironmentSetupError

JARS_DIR_ENV = "LINKAGE_JARS_DIR"
REQUIRED_JAR_PREFIXES = ("delta-spark_", "delta-storage-")
# System property conf/log4j2.properties reads for the restricted log file (unset: /dev/null).
SPARK_LOG_PROPERTY = "linkage.spark_log"


def jars_dir() -> Path:
    return Path(os.environ.get(JARS_DIR_ENV, PROJECT_ROOT / "jars"))


def required_jars() -> list[str]:
    """Absolute paths of the Delta jars fetched by setup plus Splink's similarity UDF jar."""
    from splink.backends.spark import similarity_jar_location

    folder = jars_dir()
    found = sorted(str(path) for path in folder.glob("*.jar")) if folder.is_dir() else []
    missing = [
        prefix for prefix in REQUIRED_JAR_PREFIXES if not any(Path(j).name.startswith(prefix) for j in found)
    ]
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
        raise EnvironmentSetupError(
            "Java not found: install Java 17 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )


# The JVM leaves methods over 8,000 bytes of bytecode to its interpreter, and Spark's generated code for a stage
# of many expressions (ingest's standardisation, the scorer's comparison levels) is routinely larger. At 1M people,
# standardising the gp people file took 11.6 s with them compiled against 16.2 s without, and the ingest job
# 121.0 s against 132.0 s (same extract, one run each).
JIT_HUGE_METHODS = "-XX:-DontCompileHugeMethods"
# Room for that compiled code: 512 MB of code cache, not the JVM's 240 MB. A test run's pipeline subprocess once died
# in train ("Out of space in CodeCache for adapters", a VirtualMachineError that stops the JVM) after the cache had
# filled and the JIT compiler had switched itself off. A size in spark.java_options comes later and wins.
CODE_CACHE = "-XX:ReservedCodeCacheSize=512m"
JIT_OPTIONS = f"{JIT_HUGE_METHODS} {CODE_CACHE}"

# The throughput collector for the driver: a job is a batch whose pauses nobody waits on, and G1's concurrent marking
# and write barriers take CPU from the tasks on a machine with few cores. At 1M people on 2 cores (local[2], where the
# executors run in the driver's JVM), the train job took 163.6 and 162.6 s against 169.6 and 170.8 s with G1 (runs
# alternated, the same model). A collector named in spark.java_options replaces it (the JVM refuses two).
THROUGHPUT_GC = "-XX:+UseParallelGC"
_NAMES_A_COLLECTOR = re.compile(r"-XX:\+Use\w*GC\b")

# At or above spark.sql.adaptive.advisoryPartitionSizeInBytes (64 MB), or Spark ignores it.
SHUFFLED_HASH_JOIN_MAX_PARTITION = "256m"


def session_settings(config: SparkConfig, spark_log_file: str | None = None) -> dict[str, str]:
    """Every Spark setting the factory applies, defaults first so config can override them.

    spark_log_file: where Spark's full driver/executor log (task errors quote data values) goes;
    the console gets only redacted one-line messages (conf/log4j2.properties). None: nowhere.
    """
    log_options = f"-Dlog4j2.configurationFile={PROJECT_ROOT / 'conf' / 'log4j2.properties'}"
    if spark_log_file:
        log_options += f" -D{SPARK_LOG_PROPERTY}={spark_log_file}"
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
        # A join whose shuffled partitions all hold at most this much (as shuffled, compressed) hashes one side per
        # partition instead of sorting both: adaptive execution decides per join, after the shuffle, so a larger
        # extract or fewer partitions falls back to the sort-merge join by itself. The blocking rules' self-joins
        # sorted every record's rule columns on each rule's keys, where ties between equal keys are the point: at 1M
        # people the 13 rules' pair ids took 32.2-36.0 s hashed against 50.4-59.4 s sorted (one session, the same
        # 5,153,154 pairs), and the link job 336.6 and 343.9 s against 368.7 and 411.0 s (alternating, the same
        # accuracy). The hash table is built in execution memory and is not spilled, and rows take more room
        # unpacked than shuffled: a cluster with large partitions and little memory per task sets it lower (or 0,
        # off) in spark.conf.
        "spark.sql.adaptive.maxShuffledHashJoinLocalMapThreshold": SHUFFLED_HASH_JOIN_MAX_PARTITION,
        # The driver keeps every query's plan for the UI and status API (1000 by default), and Splink's plans run
        # to megabytes of text: a bound on what a long session (the pipeline, a test run) holds. It did not cure the
        # test run's full-GC stall, which one test's plan causes on its own. The UI still shows the latest plans.
        "spark.sql.ui.retainedExecutions": "50",
        "spark.ui.retainedJobs": "200",
        "spark.ui.retainedStages": "200",
        "spark.ui.retainedTasks": "20000",
        # One DeltaLog (with its cached snapshot state) per table path opened, kept up to 10000 by default.
        "spark.databricks.delta.delta.log.cacheSize": "200",
        # Spark's default, stated because it was once off for Splink's large generated SQL. A stage whose code is too
        # large falls back to interpreted execution by itself (its compiler messages are silenced in
        # conf/log4j2.properties). At 1M people, on against off: train 166.5 s against 193.9 s (the same model to
        # 1e-16), link 348.8 s against 366.9 s (the same accuracy).
        "spark.sql.codegen.wholeStage": "true",
        "spark.driver.extraJavaOptions": f"{log_options} {JIT_OPTIONS}"
        + ("" if _NAMES_A_COLLECTOR.search(config.java_options) else f" {THROUGHPUT_GC}"),
        "spark.executor.extraJavaOptions": JIT_OPTIONS,
        # Recorded for executors; what the driver's SparkContext actually uses is the environment
        # variable set by use_worker_python (PySpark ignores this setting under `python -m`).
        "spark.pyspark.python": worker_python(config, os.environ),
    }
    if config.java_options:
        settings["spark.driver.extraJavaOptions"] += f" {config.java_options}"
    if config.local_dir:
        settings["spark.local.dir"] = config.local_dir
    settings.update(config.conf)
    return settings


def worker_python(config: SparkConfig, environ: Mapping[str, str]) -> str:
    """The interpreter Spark's Python workers run: a cluster-configured one when given, else the driver's.

    Order: `spark.pyspark.python` in the configuration (a cluster whose nodes keep Python
    elsewhere), then $PYSPARK_PYTHON (spark-submit sets it from `--conf spark.pyspark.python`),
    then the interpreter running this driver (the venv, with pyarrow and linkage), never
    whatever `python3` happens to be first on PATH.
    """
    return config.conf.get("spark.pyspark.python") or environ.get("PYSPARK_PYTHON") or sys.executable


def use_worker_python(config: SparkConfig) -> str:
    """Point PySpark at the worker interpreter before a SparkContext exists.

    PySpark's SparkContext reads only $PYSPARK_PYTHON (default `python3` on PATH) for the
    workers it starts, whichever way the driver was launched, so the factory sets it here.
    """
    python = worker_python(config, os.environ)
    os.environ["PYSPARK_PYTHON"] = python
    return python


def launched_by_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway through the environment."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark(config: SparkConfig, spark_log_file: str | None = None) -> SparkSession:
    """Create (or reuse) the process's SparkSession with Delta and Splink ready.

    Under spark-submit its own --master and driver settings win (the JVM already runs with them);
    spark.master and spark.driver_memory from config apply when the job starts the JVM itself.
    """
    check_java()
    use_worker_python(config)
    settings = session_settings(config, spark_log_file)
    builder = SparkSession.builder.appName(config.app_name)
    if launched_by_spark_submit():
        for fixed_at_launch in ("spark.driver.memory", "spark.driver.extraJavaOptions", "spark.jars"):
            settings.pop(fixed_at_launch, None)
    else:
        builder = builder.master(config.master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if launched_by_spark_submit():
        use_project_logging(spark, spark_log_file)
    spark.sparkContext.setLogLevel(config.log_level)
    silence_query_context_loggers()
    _check_delta_loaded(spark)
    return spark


def use_project_logging(spark: SparkSession, spark_log_file: str | None) -> None:
    """Under spark-submit the JVM started with Spark's own log4j setup, which prints task errors (and the
    values they quote) to the console: switch the running JVM to conf/log4j2.properties."""
    try:
        jvm = spark._jvm  # noqa: SLF001 - py4j gateway: the only route to log4j from Python
        if spark_log_file:
            jvm.java.lang.System.setProperty(SPARK_LOG_PROPERTY, spark_log_file)
        context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
        context.setConfigLocation(jvm.java.io.File(str(PROJECT_ROOT / "conf" / "log4j2.properties")).toURI())
    except Exception as error:  # noqa: BLE001 - logging set-up must never stop a job
        logging.getLogger(__name__).warning(
            "could not apply conf/log4j2.properties: %s", type(error).__name__
        )


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
            "io.delta.sql.DeltaSparkSessionExtension"
        )
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
def spark_session(config: SparkConfig, spark_log_file: str | None = None) -> Iterator[SparkSession]:
    """Session for one job. Left running on exit when the caller (a test, the pipeline) owns it."""
    # Whether Spark was running before this job, not whether this thread has an active session: the JVM
    # keeps that per thread, and a caller's thread can lose it (py4j may serve it from a new JVM thread),
    # which made a job stop the session its caller owned.
    started_here = SparkContext._active_spark_context is None
    spark = build_spark(config, spark_log_file)
    try:
        yield spark
    finally:
        if started_here and os.environ.get("LINKAGE_KEEP_SPARK") != "1":
            spark.stop()
