"""Splink's u estimation by random sampling, with every comparison counted in one query per chunk of pairs.

Splink (splink.internals.estimate_u) samples records, pairs the sample with itself and, for each
comparison in turn, runs one query over those pairs: the comparison's vector values and their pair
counts. The pairs do not depend on the comparison (the same stored sample, the same chunk), so here the
first comparison's query computes every comparison's vector values over the chunk's pairs and counts the
distinct patterns; each comparison's counts are those patterns summed by its own value, in the driver.
The u counts are integers either way, so the estimates are Splink's exactly (tests/test_u_sampling.py).
The sample, the chunking, the early exit on enough counts per level and everything after the counts
are Splink's own code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

import pandas as pd
from splink.internals import estimate_u
from splink.internals.pipeline import CTEPipeline
from splink.internals.settings import Settings

PAIRS = "__pattern_pairs"


def pattern_counts_sql(comparisons: list[Any]) -> str:
    """Each distinct pattern of the comparisons' vector values over the chunk's pairs, with its pair count."""
    gammas = ", ".join(c._gamma_column_name for c in comparisons)  # noqa: SLF001
    return f"select {gammas}, count(*) as {PAIRS} from __splink__df_comparison_vectors group by {gammas}"


def chunk_counts(patterns: pd.DataFrame, comparison: Any) -> list[dict[str, Any]]:
    """The rows Splink's per-comparison query gives (compute_new_parameters_sql with match_probability 0): per
    vector value, m_count 0 and u_count the pairs."""
    gamma = comparison._gamma_column_name  # noqa: SLF001
    by_value = patterns.groupby(gamma, sort=True)[PAIRS].sum()
    return [
        {
            "comparison_vector_value": int(value),
            "m_count": 0.0,
            "u_count": float(pairs),
            "output_column_name": comparison.output_column_name,
        }
        for value, pairs in by_value.items()
    ]


_SPLINKS_CHUNK = estimate_u._accumulate_u_counts_from_chunk_and_check_min_count  # noqa: SLF001


@contextmanager
def u_counts_in_one_query(linker: Any) -> Iterator[None]:
    """Within the block, `linker.training.estimate_u_using_random_sampling` counts every comparison of the linker's
    settings in one query per chunk of sampled pairs (Splink's function that counts one comparison's chunk is
    swapped for one that reads the counts of all, computed once)."""
    settings = linker._settings_obj  # noqa: SLF001
    comparisons = [deepcopy(c) for c in settings.comparisons]
    for comparison in comparisons:
        for level in comparison.comparison_levels:
            # As estimate_u_values does: the sample has no term frequencies.
            level._tf_adjustment_column = None  # noqa: SLF001
    uid_columns = settings.column_info_settings.unique_id_input_columns
    uid_blocking_columns = [name for column in uid_columns for name in column.l_r_names_as_l_r]
    blocking_columns = list(
        dict.fromkeys(
            uid_blocking_columns + [name for c in comparisons for name in c._columns_to_select_for_blocking()]  # noqa: SLF001
        )
    )
    vector_columns = Settings.columns_to_select_for_comparison_vector_values(
        unique_id_input_columns=uid_columns,
        comparisons=comparisons,
        retain_matching_columns=False,
        additional_columns_to_retain=[],
    )
    counted: dict[tuple[str, int, int], pd.DataFrame] = {}

    def patterns_of_chunk(db_api, df_sample, split_sqls, rhs_chunk_num, rhs_num_chunks, **sql_arguments):
        key = (df_sample.physical_name, rhs_chunk_num, rhs_num_chunks)
        if key not in counted:
            pipeline = CTEPipeline(input_dataframes=[df_sample])
            if split_sqls:
                pipeline.enqueue_list_of_sqls(split_sqls)
            pipeline.enqueue_list_of_sqls(
                estimate_u._estimate_u_comparison_vector_sqls(  # noqa: SLF001
                    db_api=db_api,
                    blocking_cols=blocking_columns,
                    cv_cols=vector_columns,
                    rhs_chunk_num=rhs_chunk_num,
                    rhs_num_chunks=rhs_num_chunks,
                    **sql_arguments,
                )
            )
            pipeline.enqueue_sql(pattern_counts_sql(comparisons), "__splink__u_pattern_counts")
            table = db_api.sql_pipeline_to_splink_dataframe(pipeline)
            try:
                counted[key] = table.as_pandas_dataframe()
            finally:
                table.drop_table_from_database_and_remove_from_cache()
        return counted[key]

    def counts_from_patterns(
        *,
        db_api,
        df_sample,
        split_sqls,
        input_tablename_sample_l,
        input_tablename_sample_r,
        link_type,
        source_dataset_input_column,
        unique_id_input_column,
        comparison,
        blocking_cols,
        cv_cols,
        rhs_chunk_num,
        rhs_num_chunks,
        counts_accumulator,
        min_count_per_level,
        probe_percent_of_max_pairs=None,
    ) -> bool:
        """Splink's _accumulate_u_counts_from_chunk_and_check_min_count, same arguments and result, for a comparison
        of the linker's settings: its counts taken from the chunk's patterns. (blocking_cols and cv_cols, one
        comparison's, are replaced by every comparison's.)"""
        patterns = patterns_of_chunk(
            db_api,
            df_sample,
            split_sqls,
            rhs_chunk_num,
            rhs_num_chunks,
            input_tablename_l=input_tablename_sample_l,
            input_tablename_r=input_tablename_sample_r,
            link_type=link_type,
            source_dataset_input_column=source_dataset_input_column,
            unique_id_input_column=unique_id_input_column,
        )
        counts_accumulator.update_from_chunk_counts(chunk_counts(patterns, comparison))
        if min_count_per_level is None:
            return False
        return counts_accumulator.all_levels_meet_min_u_count(min_count_per_level)

    estimate_u._accumulate_u_counts_from_chunk_and_check_min_count = counts_from_patterns  # noqa: SLF001
    try:
        yield
    finally:
        estimate_u._accumulate_u_counts_from_chunk_and_check_min_count = _SPLINKS_CHUNK  # noqa: SLF001
