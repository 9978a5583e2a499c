"""Releases: a run writes new table versions, audits them, then publishes them in one commit.

Modules: `manifest` (the append-only release table, Spark-free), `journal` (what this run wrote),
`lock` (one writer per lake), `audits` (the named checks), `cycle` (write -> audit -> publish for
a job body), `catalog` (Spark views by name), `operator` (list, publish with override, rollback).
Nothing is imported here so that Spark-free readers can import `manifest` alone.
"""
