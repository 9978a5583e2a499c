"""Processes started at a lower priority beside a live Spark session (the cluster daemons, the submission and
the session pipeline; linkage.standalone.at_lower_priority)."""

from __future__ import annotations

import os
import subprocess
import threading
import weakref

from linkage.standalone import at_lower_priority


def test_a_process_started_from_another_thread_leaves_the_sessions_jvm_connection_open(spark):
    # The cluster link starts its daemons from a background thread while the tests use Spark on the main
    # thread. With a preexec_fn the forked child ran the main thread's Py4J finalizer and shut the parent's
    # socket down: the next call reconnected (this test sees that), and a call in flight could lose its answer.
    gateway_client = spark.sparkContext._gateway._gateway_client
    assert spark.range(2).count() == 2
    # Weakly held, as PySpark holds it: a strong reference here would keep it alive in the forked child too.
    connection = weakref.ref(gateway_client.get_thread_connection())

    def start_in_background() -> None:
        subprocess.run(at_lower_priority(["true"], 10, own_session=True), start_new_session=True, check=True)
        subprocess.run(at_lower_priority(["true"], 10), check=True)

    starter = threading.Thread(target=start_in_background)
    starter.start()
    starter.join()

    assert spark.range(3).count() == 3
    assert gateway_client.get_thread_connection() is connection(), "the JVM connection was replaced"


def test_the_started_process_runs_at_the_lower_priority_in_or_out_of_its_own_session():
    expected = str(min(os.nice(0) + 10, 19))
    report_niceness = ["sh", "-c", "nice"]
    plain = subprocess.run(at_lower_priority(report_niceness, 10), capture_output=True, text=True, check=True)
    in_session = subprocess.run(
        at_lower_priority(report_niceness, 10, own_session=True),
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    unchanged = subprocess.run(
        at_lower_priority(report_niceness, None), capture_output=True, text=True, check=True
    )
    assert (plain.stdout.strip(), in_session.stdout.strip()) == (expected, expected)
    assert unchanged.stdout.strip() == str(os.nice(0))
