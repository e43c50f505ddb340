"""Bit-exact NumPy emulation of hls4ml 1.3 firmware (io_parallel and io_stream, any number of inputs and
outputs), without g++.

One module per layer family around the step interface of ``core``: ``dense``, ``convolution`` (im2col and
the dense kernel per output pixel), ``normalization``,
``activations``, ``softmax``, ``pooling``, ``merges``, ``reshape`` (layers that only move values) and the
C++-identical ``tables``. io_stream moves the same values as io_parallel except where its templates
compute differently (pooling); a step checks what it needs of the stream (word sizes) and refuses the rest.

Every value is an int64 fixed-point integer (units of its type's lsb), vectorized over jets.
Each layer follows the C++ in hls4ml's ``templates/vivado/nnet_utils`` and the ``ap_fixed``
semantics of ``ap_types/ap_fixed_base.h``:

- Dense (``nnet_dense_latency.h``, ``nnet_dense_resource.h``): each product ``data * weight``
  is exact, is cast to ``accum_t`` (rounding and overflow of that type), then added to the
  accumulator (initialised with the bias cast to ``accum_t``) with the accumulator's overflow
  mode at every step. When the accumulator wraps, or provably cannot overflow, the order of
  additions does not matter and a matrix product gives the same integers; otherwise the
  additions run in the C++ order (Latency: inputs in order; Resource: replayed reuse loops).
  Integer matrix products run in float32/float64 BLAS only when a bound on the weights and the
  input type proves every partial sum an exact integer (below 2**24 / 2**53).
- Weights and biases are the decimal strings hls4ml writes (``WeightVariable.__iter__``), read
  back as doubles and converted like ``ap_fixed(double)``, as the C-simulation loads them.
- Lookup tables (softmax exp/invert, sigmoid, tanh, softplus, softsign, elu, selu) are built with
  the same float32/double libm calls as the C++ table init, and indexed the same way (C integer
  conversion of the ap_fixed quotient, a truncation towards zero).
- Parametrized and hard activations (leaky_relu, prelu, thresholded_relu, elu's alpha,
  hard_sigmoid, hard_tanh) take their constant as the C++ does: the literal hls4ml writes,
  converted like ap_fixed(double) to the parameter type; products and sums are exact, as
  ap_fixed's widening operators make them, and only the assignment to the result rounds.

A layer or type the emulator does not cover is listed by ``unsupported_layers``; ``emulate``
refuses such a model instead of approximating it.
"""

from edgeml.firmware.emulator import (activations, convolution, dense, merges, normalization, pooling,  # noqa: F401
                                     quantizers, reshape, softmax)  # (they register their layers)
from edgeml.firmware.emulator.core import EmulationResult, Emulator, Traces, emulate, unsupported_layers

__all__ = ["EmulationResult", "Emulator", "Traces", "emulate", "unsupported_layers"]
