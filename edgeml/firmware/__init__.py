"""From a Keras/QKeras model to hls4ml firmware, and how faithfully that firmware follows the model.

One module per concern: ``passes`` (Keras-level fix-ups), ``hls`` (hls4ml config and build),
``csim`` (g++ C-simulation), ``emulator`` (bit-exact NumPy emulation), ``reference`` (Keras
reference values), ``fidelity`` (the comparison, NumPy only), ``advice`` (precision advice),
``stage`` (the convert stage and its cache) and ``render`` (report text).
"""

from edgeml.firmware.advice import apply_precisions, suggest_precisions
from edgeml.firmware.emulator import emulate, unsupported_layers
from edgeml.firmware.fidelity import engine_agreement, first_broken_layer, input_type
from edgeml.firmware.hls import build, hls4ml_config, write_project
from edgeml.firmware.passes import prepare_for_hls, unconvertible_layers
from edgeml.firmware.render import render_markdown, summary_lines
from edgeml.firmware.stage import ENGINES, convert, evaluate

__all__ = ["ENGINES", "apply_precisions", "build", "convert", "emulate", "engine_agreement", "evaluate",
           "first_broken_layer", "hls4ml_config", "input_type", "prepare_for_hls", "render_markdown",
           "suggest_precisions", "summary_lines", "unconvertible_layers", "unsupported_layers",
           "write_project"]
