"""Fetch the Delta jars once (setup time) and register them with the venv's Spark.

`python -m linkage.jars` asks Spark's own package resolver (Ivy, Maven Central by default,
or the mirror in the user's Ivy settings) for the delta-spark release matching the pinned
Python package, copies the jars PySpark does not already ship into ./jars, and writes the
venv's `spark-defaults.conf` so that `spark-submit` puts them on the driver classpath at JVM
start. Only Python and Java are needed. After this, no session resolves anything.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import pyspark

from linkage.config import PROJECT_ROOT
from linkage.session import jars_dir

SCALA_BINARY = "2.13"  # Spark 4 is built for Scala 2.13 only


def delta_coordinates() -> str:
    return f"io.delta:delta-spark_{SCALA_BINARY}:{version('delta-spark')}"


def spark_home() -> Path:
    return Path(pyspark.__file__).parent


def fetch_jars(dest: Path) -> list[Path]:
    from pyspark.sql import SparkSession

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="linkage-ivy-") as ivy:
        spark = (
            SparkSession.builder.master("local[1]")
            .appName("linkage-setup")
            .config("spark.jars.packages", delta_coordinates())
            .config("spark.jars.ivy", ivy)
            .config("spark.ui.enabled", "false")
            .getOrCreate()
        )
        spark.stop()
        shipped = {_artifact(p.name) for p in (spark_home() / "jars").glob("*.jar")}
        copied = []
        for jar in sorted(Path(ivy, "jars").glob("*.jar")):
            # Ivy names jars group_artifact-version.jar; skip what PySpark already ships.
            plain_name = jar.name.split("_", 1)[1] if "_" in jar.name else jar.name
            if _artifact(plain_name) in shipped:
                continue
            target = dest / plain_name
            shutil.copy2(jar, target)
            copied.append(target)
    return copied


def _artifact(jar_name: str) -> str:
    """'antlr4-runtime-4.13.1.jar' -> 'antlr4-runtime' (the name without its version)."""
    stem = jar_name.removesuffix(".jar")
    parts = stem.split("-")
    while parts and parts[-1][:1].isdigit():
        parts.pop()
    return "-".join(parts)


def write_spark_defaults(jars: list[str]) -> Path:
    from linkage.session import JIT_OPTIONS

    conf_dir = spark_home() / "conf"
    conf_dir.mkdir(exist_ok=True)
    path = conf_dir / "spark-defaults.conf"
    log4j = PROJECT_ROOT / "conf" / "log4j2.properties"
    path.write_text(
        "# Written by `make setup` (python -m linkage.jars): lets plain spark-submit load Delta and Splink.\n"
        f"spark.jars {','.join(jars)}\n"
        "spark.sql.extensions io.delta.sql.DeltaSparkSessionExtension\n"
        "spark.sql.catalog.spark_catalog org.apache.spark.sql.delta.catalog.DeltaCatalog\n"
        f"spark.driver.extraJavaOptions -Dlog4j2.configurationFile={log4j} {JIT_OPTIONS}\n"
        f"spark.executor.extraJavaOptions {JIT_OPTIONS}\n",
        encoding="utf-8",
    )
    return path


def main() -> int:
    from linkage.errors import EnvironmentSetupError
    from linkage.session import check_java, required_jars

    try:
        check_java()
        dest = jars_dir()
        try:
            jars = required_jars()
        except EnvironmentSetupError:
            print(f"fetching {delta_coordinates()} into {dest} ...", flush=True)
            fetch_jars(dest)
            jars = required_jars()
    except EnvironmentSetupError as error:
        print(f"setup: {error}", file=sys.stderr)
        return 2
    defaults = write_spark_defaults(jars)
    print(f"jars ready: {', '.join(Path(j).name for j in jars)}; registered in {defaults}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
