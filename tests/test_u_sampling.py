"""u by random sampling with every comparison counted in one query gives Splink's own u estimates."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
from builders import phonetic_people_frame, synthetic_people

from linkage.link import u_sampling
from linkage.link.model import build_linker, model_input, register_sources, splink_backend
from linkage.link.settings import build_settings


def estimated_u(db_api, people, settings, num_chunks: int, in_one_query: bool) -> dict:
    linker = build_linker(register_sources(db_api, people), settings)
    with u_sampling.u_counts_in_one_query(linker) if in_one_query else nullcontext():
        linker.training.estimate_u_using_random_sampling(max_pairs=3_000, seed=5, num_chunks=num_chunks)
    return {
        (c.output_column_name, level.comparison_vector_value): level._u_probability
        for c in linker._settings_obj.comparisons
        for level in c._comparison_levels_excluding_null
    }


@pytest.mark.parametrize("num_chunks", [1, 3])
def test_u_from_one_query_per_chunk_equals_splinks(spark, make_config, num_chunks):
    rows, _ = synthetic_people(seed=11)
    people = model_input(phonetic_people_frame(spark, rows))
    config = make_config()
    settings = build_settings(config.linkage).get_settings("spark").as_dict()
    with splink_backend(spark, config, "test-u") as db_api:
        splinks = estimated_u(db_api, people, settings, num_chunks, in_one_query=False)
        ours = estimated_u(db_api, people, settings, num_chunks, in_one_query=True)

    estimated = {key: u for key, u in splinks.items() if isinstance(u, float)}
    assert len(estimated) > 20  # most levels of the nine comparisons were seen among the sampled pairs
    assert ours == splinks  # integer counts either way: equal, not close
    assert (
        u_sampling.estimate_u._accumulate_u_counts_from_chunk_and_check_min_count is u_sampling._SPLINKS_CHUNK
    )  # restored
