"""Hardware cost of a jet tagger: parameters, nonzero weights, sparsity and BOPs.

BOPs (bit operations) of a Dense layer with n_in inputs, counted on the weights the
firmware holds (after pruning and quantization):

    BOPs = sum over nonzero weights of [ b_w * b_a  +  (b_w + b_a + ceil(log2 n_in)) ]

The first term is the multiplication (an b_w x b_a bit multiplier); the second is the
addition of that product into the neuron's accumulator, whose width is the product
width plus ceil(log2 n_in) growth bits (one addition per nonzero weight: the products
with each other and with the bias). Zero weights cost nothing: hls4ml drops them.
b_w are the QKeras kernel bits; b_a the bits of the layer's input: the preceding
quantized_relu / quantized_bits activation's bits, else FLOAT_BITS. Float tensors count
as FLOAT_BITS = 16 bits, hls4ml's default ap_fixed<16,6>, because that is what the
float model becomes on the FPGA. The network input is FLOAT_BITS wide for every model.
"""

from __future__ import annotations

import math

import numpy as np

from edgeml.compress.prune import unwrap
from edgeml.compress.quantize import quantized_weights

FLOAT_BITS = 16


def quantizer_bits(quantizer) -> int | None:
    """Bits of a QKeras quantizer object (None: not quantized)."""
    bits = getattr(quantizer, "bits", None)
    return int(bits) if bits is not None else None


def model_cost(model, input_bits: int = FLOAT_BITS) -> dict:
    """Cost metrics of a (stripped or wrapped) Dense tagger; see the module docstring for BOPs."""
    act_bits = input_bits
    per_layer: dict[str, dict] = {}
    for wrapped in model.layers:
        layer = unwrap(wrapped)
        kind = type(layer).__name__
        if kind in ("Dense", "QDense"):
            kernel, bias = quantized_weights(layer)
            weight_bits = quantizer_bits(getattr(layer, "kernel_quantizer_internal", None)) or FLOAT_BITS
            nonzero = int(np.count_nonzero(kernel))
            n_in = kernel.shape[0]
            add_bits = weight_bits + act_bits + math.ceil(math.log2(max(n_in, 2)))
            per_layer[layer.name] = {
                "weights": int(kernel.size), "nonzero": nonzero, "bias_nonzero": int(np.count_nonzero(bias)),
                "biases": int(bias.size), "sparsity": float(1 - nonzero / kernel.size),
                "weight_bits": weight_bits, "input_bits": act_bits,
                "bops": int(nonzero * (weight_bits * act_bits + add_bits)),
            }
            act_bits = FLOAT_BITS  # the accumulator output until an activation sets it
        elif kind == "QActivation":
            act_bits = quantizer_bits(layer.quantizer) or FLOAT_BITS
        elif kind == "Activation":
            act_bits = FLOAT_BITS
    kernel_weights = sum(v["weights"] for v in per_layer.values())
    kernel_nonzero = sum(v["nonzero"] for v in per_layer.values())
    return {
        "parameters": int(sum(v["weights"] + v["biases"] for v in per_layer.values())),
        "nonzero_weights": int(kernel_nonzero + sum(v["bias_nonzero"] for v in per_layer.values())),
        "sparsity": float(1 - kernel_nonzero / kernel_weights) if kernel_weights else 0.0,
        "bops": int(sum(v["bops"] for v in per_layer.values())),
        "cost_per_layer": per_layer,
    }
