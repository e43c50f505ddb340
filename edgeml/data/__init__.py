"""The data stage: the hls4ml LHC jet dataset from any source, split and scaled."""

from edgeml.data.load import (CLASSES, DEFAULT_SAMPLE, FEATURES, JetData, cache_dir, default_sample_metadata,
                              default_sample_path, fetch_openml, load_jets, read_file, write_npz)
from edgeml.data.prepare import Scaler, Splits, describe, make_splits, split_indices, splits_from_config, subsample

__all__ = ["CLASSES", "DEFAULT_SAMPLE", "FEATURES", "JetData", "Scaler", "Splits", "cache_dir",
           "default_sample_metadata", "default_sample_path", "describe", "fetch_openml", "load_jets",
           "make_splits", "read_file", "split_indices", "splits_from_config", "subsample", "write_npz"]
