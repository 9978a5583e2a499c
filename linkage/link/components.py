"""Connected components in rounds that grow with log(diameter), not with the diameter: hook to the smallest
neighbour, jump pointers to the root, contract the edges, repeat.

Splink's clustering on Spark propagates the smallest id one hop per round, writing and re-reading
parquet each round: a chain of n links takes n rounds. Here each round

1. hooks every node of the (contracted) edge list to its smallest neighbour, or to itself when it is
   smaller than all of them: the hooks form a forest whose roots are the local minima;
2. jumps pointers (parent := parent's parent) until every node points at its root: log2(depth) steps;
3. relabels the edges by root and drops those inside one tree: the surviving graph has at most as
   many nodes as there were trees, and usually far fewer.

A chain is one round (its hooks form one tree) of about log2(length) jumps. Every node's final label is the smallest node id
of its component, the same cluster_id as Splink's connected components. Frames that iterate are
checkpointed (the SparkContext's checkpoint folder: the run's restricted scratch space under
linkage.link.model.splink_backend) so their lineage does not grow with the rounds.

GraphFrames' connected components (Python package graphframes-py) would do the same, but needs its JVM
jar for Spark 4.0 / Scala 2.13 on every node's classpath beside Delta's; written here in plain Spark it
needs nothing more than Spark.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from linkage.link.lineage import materialised

NODE, COMPONENT = "node", "component"
# A safety net, not a tuning knob: rounds and jumps are logarithmic, so these are never reached on real graphs.
MAX_ROUNDS = 64
MAX_JUMPS = 64


def undirected_edges(edges_df: DataFrame, src: str = "src", dst: str = "dst") -> DataFrame:
    """Each edge once as (src < dst); self-loops and duplicates dropped."""
    return (
        edges_df.select(F.least(src, dst).alias("src"), F.greatest(src, dst).alias("dst"))
        .where(F.col("src") != F.col("dst"))
        .distinct()
    )


def hooks(edges_df: DataFrame) -> DataFrame:
    """(node, parent): every node of the edge list points at its smallest neighbour if that is smaller, else itself.

    Edges are stored with src < dst, so a dst's smallest neighbour is always smaller than it; a src is a root
    unless it is also the dst of some edge.
    """
    return (
        edges_df.groupBy(F.col("dst").alias(NODE))
        .agg(F.min("src").alias("parent"))
        .unionByName(edges_df.select(F.col("src").alias(NODE), F.col("src").alias("parent")))
        .groupBy(NODE)
        .agg(F.min("parent").alias("parent"))
    )


def jump_once(parents_df: DataFrame) -> DataFrame:
    """parent := parent's parent (a root is its own parent, so roots stay)."""
    grand = parents_df.select(F.col(NODE).alias("parent"), F.col("parent").alias("grandparent"))
    return parents_df.join(grand, "parent", how="left").select(
        NODE, F.coalesce("grandparent", "parent").alias("parent")
    )


def roots(parents_df: DataFrame) -> DataFrame:
    """(node, parent) with every parent a root: pointer jumping until nothing moves."""
    current = materialised(parents_df)
    for _ in range(MAX_JUMPS):
        jumped = materialised(jump_once(current))
        moved = (
            jumped.join(current.withColumnRenamed("parent", "before"), NODE, how="inner")
            .where(F.col("parent") != F.col("before"))
            .limit(1)
            .count()
        )
        current = jumped
        if not moved:
            return current
    raise RuntimeError(f"pointer jumping did not settle in {MAX_JUMPS} steps")


def contracted(edges_df: DataFrame, roots_df: DataFrame) -> DataFrame:
    """The edges between different trees, relabelled by their roots."""
    root_of = roots_df.select(F.col(NODE).alias("end"), F.col("parent").alias("root"))
    relabelled = edges_df.join(
        root_of.withColumnRenamed("end", "src").withColumnRenamed("root", "src_root"), "src", how="inner"
    ).join(root_of.withColumnRenamed("end", "dst").withColumnRenamed("root", "dst_root"), "dst", how="inner")
    return undirected_edges(relabelled, "src_root", "dst_root")


def connected_components(
    edges_df: DataFrame,
    nodes_df: DataFrame | None = None,
    src: str = "src",
    dst: str = "dst",
    node: str = NODE,
) -> DataFrame:
    """(node, component) for every node of the edges and of nodes_df (column `node`); component is the
    smallest node id in the node's component, so a node with no edge is its own component."""
    edges = materialised(undirected_edges(edges_df, src, dst))
    labels = None  # (node, component) for every node met so far, component a root of the latest round
    for _ in range(MAX_ROUNDS):
        if edges.isEmpty():
            break
        tree_roots = roots(hooks(edges))
        if labels is None:
            labels = tree_roots.select(NODE, F.col("parent").alias(COMPONENT))
        else:
            moved = tree_roots.select(F.col(NODE).alias(COMPONENT), F.col("parent").alias("root"))
            labels = labels.join(moved, COMPONENT, how="left").select(
                NODE, F.coalesce("root", COMPONENT).alias(COMPONENT)
            )
        labels = materialised(labels)
        edges = materialised(contracted(edges, tree_roots))
    else:
        raise RuntimeError(f"connected components did not settle in {MAX_ROUNDS} rounds")
    spark = edges_df.sparkSession
    if labels is None:
        labels = spark.createDataFrame([], f"{NODE} string, {COMPONENT} string")
    if nodes_df is None:
        return labels.withColumnRenamed(NODE, node)
    every_node = nodes_df.select(F.col(node).alias(NODE)).distinct()
    return every_node.join(labels, NODE, how="left").select(
        F.col(NODE).alias(node), F.coalesce(COMPONENT, NODE).alias(COMPONENT)
    )
