"""`make test-image` runs this with spark-submit inside the image (mounted, not part of it).

It checks what spark-submit users rely on: the Delta jars and extensions come from the venv's
spark-defaults.conf (written at build time by `python -m linkage.jars`), Python workers run the
venv's interpreter (PYSPARK_PYTHON), and the driver got the heap the entrypoint derived from the
container's memory limit. Usage: spark-submit spark_smoke.py <delta table folder>
"""

import os
import sys

from pyspark.sql import SparkSession


def main(table_path: str) -> int:
    spark = SparkSession.builder.appName("linkage-image-smoke").getOrCreate()
    rows = spark.read.format("delta").load(table_path).count()
    # A Python lambda runs in a Python worker: it reports the interpreter Spark started it with.
    workers = sorted(set(spark.sparkContext.parallelize(range(4), 2).map(lambda _: sys.executable).collect()))
    driver_memory = spark.conf.get("spark.driver.memory", "unset")
    spark.stop()
    print(
        f"spark-submit smoke: {rows} rows in {table_path}; python workers {workers}; driver memory {driver_memory}"
    )
    problems = []
    if rows == 0:
        problems.append("the Delta table is empty")
    if workers != [os.environ["PYSPARK_PYTHON"]]:
        problems.append(f"python workers ran {workers}, not {os.environ['PYSPARK_PYTHON']}")
    if driver_memory != os.environ.get("SPARK_DRIVER_MEMORY"):
        problems.append(
            f"driver memory {driver_memory}, entrypoint asked {os.environ.get('SPARK_DRIVER_MEMORY')}"
        )
    for problem in problems:
        print(f"spark-submit smoke: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
