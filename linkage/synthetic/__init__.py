"""Synthetic multi-source extract with truth: the test data of the whole pipeline.

`generate_extract` writes the eight files of shared/specs/source-extracts.md plus truth.csv and
truth_conditions.csv; `extract_present` tells the pipeline whether a raw folder already has them.
"""

from linkage.synthetic.extract import FILES, extract_present, generate_extract, generate_raw_extract

__all__ = ["FILES", "extract_present", "generate_extract", "generate_raw_extract"]
