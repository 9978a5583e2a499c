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

An edge list of up to `driver_max_edges` edges is labelled in the driver instead (`driver_components`:
collected as Arrow, SciPy's connected components over integer ids, the labels sent back as one frame). A
link graph is small beside the pairs it came from (632,319 edges at 1M people, from 12.9M scored pairs), and
each Spark round costs a few fixed seconds whatever its size. At 1M people, on a machine busy with another
Spark job, the driver took 36 s and the Spark rounds 271 s, with the same label for all 996,511 nodes; the
Python process's peak grew by 231 MB (about 400 bytes per edge). The conflict split's reclustering of a few
hundred clusters, a handful of Spark jobs per round, takes well under a second that way. Above the bound (a
10M-record site on a cluster) the rounds run in Spark.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from linkage.link.lineage import materialised

NODE, COMPONENT = "node", "component"
# A safety net, not a tuning knob: rounds and jumps are logarithmic, so these are never reached on real graphs.
MAX_ROUNDS = 64
MAX_JUMPS = 64
# Edges labelled in the driver at most: about 400 bytes of the driver's Python memory per edge (measured at 1M people).
DRIVER_MAX_EDGES = 5_000_000


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
    driver_max_edges: int = DRIVER_MAX_EDGES,
) -> DataFrame:
    """(node, component) for every node of the edges and of nodes_df (column `node`); component is the
    smallest node id in the node's component, so a node with no edge is its own component. Up to
    `driver_max_edges` edges are labelled in the driver, more in Spark rounds (0: always in Spark)."""
    edges = materialised(undirected_edges(edges_df, src, dst))
    in_driver = edges.count() <= driver_max_edges
    labels = driver_components(edges) if in_driver else distributed_components(edges)
    if nodes_df is None:
        return labels.withColumnRenamed(NODE, node)
    every_node = nodes_df.select(F.col(node).alias(NODE)).distinct()
    return every_node.join(labels, NODE, how="left").select(
        F.col(NODE).alias(node), F.coalesce(COMPONENT, NODE).alias(COMPONENT)
    )


def driver_components(edges_df: DataFrame) -> DataFrame:
    """(node, component) for every node of an edge list small enough to hold in the driver: component is the
    smallest node id of the node's component, as distributed_components gives.

    Node ids are strings: sorted once, so a node's integer id orders as its string does (Arrow and Spark both
    compare strings by their UTF-8 bytes) and the smallest integer of a component is its smallest id.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as labelled_graph

    table = edges_df.select(F.col("src").cast("string"), F.col("dst").cast("string")).toArrow()
    schema = pa.schema([(NODE, pa.string()), (COMPONENT, pa.string())])
    if table.num_rows == 0:
        return edges_df.sparkSession.createDataFrame(schema.empty_table())
    ends = pa.concat_arrays([table.column("src").combine_chunks(), table.column("dst").combine_chunks()])
    nodes = pc.unique(ends)
    nodes = nodes.take(pc.sort_indices(nodes))
    ids = pc.index_in(ends, value_set=nodes).to_numpy()
    edge_count, node_count = table.num_rows, len(nodes)
    graph = coo_matrix(
        (np.ones(edge_count, dtype=np.int8), (ids[:edge_count], ids[edge_count:])),
        shape=(node_count, node_count),
    )
    component_count, label = labelled_graph(graph, directed=False)
    smallest = np.full(component_count, node_count, dtype=np.int64)
    np.minimum.at(smallest, label, np.arange(node_count, dtype=np.int64))
    labelled = pa.table([nodes, nodes.take(pa.array(smallest[label]))], schema=schema)
    return edges_df.sparkSession.createDataFrame(labelled)


def distributed_components(edges: DataFrame) -> DataFrame:
    """(node, component) for every node of an undirected edge list (src < dst, stored): hook, jump, contract, in
    rounds that grow with log(diameter)."""
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
    if labels is None:
        return edges.sparkSession.createDataFrame([], f"{NODE} string, {COMPONENT} string")
    return labels
