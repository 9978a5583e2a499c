"""Connected components, in logarithmic Spark rounds and in the driver, against Splink's clustering and a plain
union-find."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from splink import DuckDBAPI
from splink.clustering import cluster_pairwise_predictions_at_threshold

from linkage.link.components import connected_components


def union_find(nodes, edges) -> dict[str, str]:
    """node -> smallest node of its component, by union-find (the reference)."""
    parent = {n: n for n in nodes}

    def find(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in nodes}


# Both ways of labelling: Spark rounds (no edge list is small enough for the driver) and the driver (every one is).
IN_SPARK, IN_DRIVER = 0, 10**9
BOTH_WAYS = pytest.mark.parametrize("driver_max_edges", [IN_SPARK, IN_DRIVER], ids=["spark-rounds", "driver"])


def components_of(spark, nodes, edges, driver_max_edges) -> dict[str, str]:
    edges_df = spark.createDataFrame(edges, "src string, dst string")
    nodes_df = spark.createDataFrame([(n,) for n in nodes], "node string")
    labelled = connected_components(edges_df, nodes_df, driver_max_edges=driver_max_edges)
    return {r["node"]: r["component"] for r in labelled.collect()}


def splink_components(nodes, edges) -> dict[str, str]:
    """Splink's own clustering of the same graph: the reference for cluster_id being the smallest record id.
    On DuckDB: components are a property of the edge list, not of the backend, and Splink's Spark loop
    costs seconds per iteration."""
    clusters = cluster_pairwise_predictions_at_threshold(
        pd.DataFrame({"record_uid": nodes}),
        pd.DataFrame(edges, columns=["record_uid_l", "record_uid_r"]),
        DuckDBAPI(),
        node_id_column_name="record_uid",
        edge_id_column_name_left="record_uid_l",
        edge_id_column_name_right="record_uid_r",
    ).as_pandas_dataframe()
    return dict(zip(clusters["record_uid"], clusters["cluster_id"], strict=True))


@BOTH_WAYS
def test_small_random_graphs_give_splink_components(spark, tmp_path, driver_max_edges):
    """Sparse, middling and dense random graphs against Splink's own clustering and a union-find."""
    spark.sparkContext.setCheckpointDir(str(tmp_path / "checkpoints"))
    rng = random.Random(16)
    for graph, edge_count in enumerate([45, 20, 70]):
        nodes = [f"n{i:03d}" for i in range(60)]
        edges = [tuple(rng.sample(nodes, 2)) for _ in range(edge_count)]
        edges += [(nodes[0], nodes[0])]  # a self-loop changes nothing
        ours = components_of(spark, nodes, edges, driver_max_edges)
        assert ours == union_find(nodes, edges), f"graph {graph}"
        assert ours == splink_components(nodes, edges), f"graph {graph}"
        assert len(set(ours.values())) < len(nodes)  # the graph joined something


@BOTH_WAYS
def test_a_chain_of_ten_thousand_links_is_one_component(spark, tmp_path, driver_max_edges):
    spark.sparkContext.setCheckpointDir(str(tmp_path / "checkpoints"))
    nodes = [f"r{i:05d}" for i in range(10_001)]
    order = list(range(10_000))
    random.Random(3).shuffle(order)  # links in random order and direction: no help from the input order
    edges = [(nodes[i], nodes[i + 1]) if i % 2 else (nodes[i + 1], nodes[i]) for i in order]
    edges.append(("x1", "x2"))  # and a separate pair
    all_nodes = [*nodes, "x1", "x2", "lonely"]
    ours = components_of(spark, all_nodes, edges, driver_max_edges)
    assert ours == union_find(all_nodes, edges)
    assert set(ours.values()) == {"r00000", "x1", "lonely"}


@BOTH_WAYS
def test_no_edges_leaves_every_node_alone(spark, driver_max_edges):
    ours = components_of(spark, ["a", "b"], [], driver_max_edges)
    assert ours == {"a": "a", "b": "b"}


def test_the_driver_orders_ids_as_spark_does(spark, tmp_path):
    """The component is the smallest id by Spark's string order (UTF-8 bytes), whatever order the edges list
    them in: upper case before lower, shorter prefix first, digits before letters."""
    spark.sparkContext.setCheckpointDir(str(tmp_path / "checkpoints"))
    nodes = ["b", "B", "a1", "a", "10", "9", "z"]
    edges = [("b", "B"), ("a1", "a"), ("a", "z"), ("10", "9")]
    assert components_of(spark, nodes, edges, IN_DRIVER) == components_of(spark, nodes, edges, IN_SPARK)
    assert components_of(spark, nodes, edges, IN_DRIVER) == {
        "b": "B",
        "B": "B",
        "a1": "a",
        "a": "a",
        "z": "a",
        "10": "10",
        "9": "10",
    }
