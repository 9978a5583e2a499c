"""The report on a dead session JVM (tests/session_jvm.py): what it keeps from the JVM's logs and what it drops."""

from __future__ import annotations

from session_jvm import SessionJvm, last_error_lines

SPARK_LOG = """\
2026-12-05 01:34:40,101 ERROR org.apache.spark.executor.Executor: Exception in task 0.0 in stage 3.0 (TID 7)
java.lang.NumberFormatException: For input string: "Ann White 9434765919"
\tat java.base/java.lang.Long.parseLong(Long.java:711)
\tat org.apache.spark.sql.catalyst.expressions.Cast.castToLong(Cast.scala:12)
2026-12-05 01:34:41,555 ERROR org.apache.spark.util.SparkUncaughtExceptionHandler: Uncaught exception in thread Executor task launch worker for task 1.0 in stage 4.0 (TID 9)
java.lang.OutOfMemoryError: Java heap space
\tat org.apache.spark.unsafe.memory.HeapMemoryAllocator.allocate(HeapMemoryAllocator.java:50)
Caused by: java.lang.IllegalStateException: LS1 4AB
"""
GC_LOG = """\
[1.000s] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 300M->120M(1024M) 3.500ms
[2.000s] GC(1) Pause Full (G1 Compaction Pause) 3640M->2754M(4096M) 625.124ms
[3.000s] GC(2) Concurrent Mark Cycle 12.000ms
"""


def test_the_report_keeps_classes_threads_and_frames_and_no_message_text(tmp_path):
    (tmp_path / "spark.log").write_text(SPARK_LOG)
    lines = last_error_lines([tmp_path / "stderr.txt", tmp_path / "spark.log"])
    assert lines == [
        "  [spark.log] java.lang.NumberFormatException",
        "    at java.base/java.lang.Long.parseLong(Long.java:711)",
        "    at org.apache.spark.sql.catalyst.expressions.Cast.castToLong(Cast.scala:12)",
        "  [spark.log] uncaught exception in thread Executor task launch worker for task 1.0 in stage 4.0 (TID 9)",
        "  [spark.log] java.lang.OutOfMemoryError",
        "    at org.apache.spark.unsafe.memory.HeapMemoryAllocator.allocate(HeapMemoryAllocator.java:50)",
        "  [spark.log] java.lang.IllegalStateException",
    ]
    report = "\n".join(lines)
    assert not [value for value in ("Ann", "White", "9434765919", "LS1", "4AB") if value in report]


def test_the_report_names_the_exit_and_sums_the_gc_pauses(tmp_path):
    jvm = SessionJvm(tmp_path)
    jvm.gc_log.write_text(GC_LOG)
    (tmp_path / "spark.log").write_text(SPARK_LOG)
    killed, out_of_memory = jvm.death_report(-9, after="t::a"), jvm.death_report(52, after="t::b")
    assert killed.splitlines()[0] == "The tests' Spark JVM is gone (killed by SIGKILL); found after t::a."
    assert "exit 52: OutOfMemoryError" in out_of_memory.splitlines()[0]
    assert killed.splitlines()[2] == (
        "GC: 2 pauses (1 full) in the last 2 MB of the log, 0.6 s paused; "
        "heap after a pause peaked at 2754 MB (heap 4096 MB)."
    )
    assert "  [spark.log] java.lang.OutOfMemoryError" in killed.splitlines()


def test_a_folder_that_would_split_the_java_options_gets_none(tmp_path):
    assert SessionJvm(tmp_path / "a b").java_options() == ""
    assert SessionJvm(tmp_path).java_options().startswith("-Xlog:gc:file=")
