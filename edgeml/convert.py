"""The public convert API, kept where existing code imports it; the code lives in ``edgeml.firmware``."""

from __future__ import annotations

from edgeml.firmware.advice import apply_precisions, suggest_precisions
from edgeml.firmware.fidelity import first_broken_layer, input_type
from edgeml.firmware.hls import PROJECT_NAME, build, hls4ml_config
from edgeml.firmware.passes import prepare_for_hls, unconvertible_layers
from edgeml.firmware.render import render_markdown, summary_lines
from edgeml.firmware.stage import (CACHE_FILE, DEFAULT_PROJECTS_DIR, PREDICTIONS_FILE, REPORT_FILE, REPORT_MD,
                                   comparison_data, convert)


def build_hls_model(model, hls: dict, output_dir):
    """``edgeml.firmware.build`` with the warnings attached as ``hls_model.edgeml_warnings`` (older API)."""
    hls_model, warnings = build(model, hls, output_dir)
    hls_model.edgeml_warnings = warnings
    return hls_model


__all__ = ["CACHE_FILE", "DEFAULT_PROJECTS_DIR", "PREDICTIONS_FILE", "PROJECT_NAME", "REPORT_FILE", "REPORT_MD",
           "apply_precisions", "build_hls_model", "comparison_data", "convert", "first_broken_layer",
           "hls4ml_config", "input_type", "prepare_for_hls", "render_markdown", "suggest_precisions",
           "summary_lines", "unconvertible_layers"]
