"""Synthetic multi-source extract with truth: the test data of the whole pipeline.

`generate_extract` writes the eight files of shared/specs/source-extracts.md plus truth.csv and
truth_conditions.csv; `extract_present` tells the pipeline whether a raw folder already has them.
"""

from linkage.synthetic.extract import (
    FILES,
    SYNTHETIC_MARKER,
    extract_files_found,
    extract_present,
    extract_stems,
    generate_extract,
    generate_raw_extract,
    generated_file_names,
)

__all__ = [
    "FILES",
    "SYNTHETIC_MARKER",
    "extract_files_found",
    "extract_present",
    "extract_stems",
    "generate_extract",
    "generate_raw_extract",
    "generated_file_names",
]
