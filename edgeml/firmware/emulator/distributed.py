"""Dense with ``Strategy: distributed_arithmetic``: the adder graph da4ml generated, statement by statement.

hls4ml 1.3 (``backends/vivado/passes/distributed_arithmetic.py``) replaces such a layer's
kernel by ``dense_da_<index>(model_inp, model_out)``, C++ that da4ml's ``hls_logic_and_bridge_gen``
wrote: straight-line assignments of shift-and-add expressions, each to an explicit ap_fixed type,
and (when hls4ml fused the heterogeneous input quantizer into it) per-input casts at the top.
The weights themselves are deleted from the layer. So the step replays that code: every statement
is an exact ap_fixed operation (bit_shift<s> only moves the binary point, + and - widen) followed by
the assignment's quantization and overflow, as ``Fixed.requantize`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgeml.firmware.emulator.core import _common, _Step, _Unsupported
from edgeml.fixed import Fixed

_TYPE = r"ap_u?fixed<[^>]*>"
_NAME = r"(?:v\d+|model_inp_q_\d+|model_inp\[\d+\])"
_TERM = rf"(?:bit_shift<(-?\d+)>\(({_NAME})\)|({_NAME})|({_TYPE})\(([-+0-9.eE]+)\))"
_ASSIGN = re.compile(rf"^\s*({_TYPE})\s+(v\d+|model_inp_q_\d+)\s*=\s*(.+?);")
_OUTPUT = re.compile(r"^\s*model_out\[(\d+)\]\s*=\s*(.+?);")
_BINARY = re.compile(rf"^{_TERM}\s*([+-])\s*{_TERM}$")
_UNARY = re.compile(rf"^(-?){_TERM}$")  # da4ml negates a term in place of a subtraction from 0
_CAST = re.compile(rf"^({_TYPE})\((.+)\)$")
_SIGNATURE = re.compile(r"void\s+(dense_da_\d+)\s*\(\s*inp_t\s+model_inp\[(\d+)\],\s*out_t\s+model_out\[(\d+)\]\)")


def _type(text: str) -> Fixed:
    try:
        return Fixed.parse(text.replace(" ", ""))
    except ValueError as e:
        raise _Unsupported(f"distributed-arithmetic type {text}: {e}") from None


@dataclass
class _Term:
    """A value: a variable (optionally bit-shifted) or a constant of some type."""

    name: str | None
    shift: int = 0
    const: int = 0
    const_frac: int = 0


def _term(groups) -> _Term:
    shift, shifted, plain, ctype, cvalue = groups
    if shifted is not None:
        return _Term(shifted, int(shift))
    if plain is not None:
        return _Term(plain)
    t = _type(ctype)
    return _Term(None, const=int(t.quantize_to_ints(np.array([float(cvalue)]))[0]), const_frac=t.frac)


_LITERAL = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _literal(text: str) -> _Term:
    """A C++ number literal as an exact constant: da4ml writes an output that its adder graph proves
    always zero (every weight into it pruned) as ``ap_ufixed<1,0> v8 = 0.0;``."""
    numerator, denominator = float(text).as_integer_ratio()  # a double is a binary fraction: denominator 2^frac
    frac = denominator.bit_length() - 1
    if frac > 60:
        raise _Unsupported(f"distributed-arithmetic constant {text} needs more than 60 fraction bits")
    return _Term(None, const=numerator, const_frac=frac)


def _expression(text: str):
    """(sign, terms, cast type or None) of one right-hand side."""
    text = text.strip()
    cast = None
    m = _CAST.match(text)
    if m and _UNARY.match(m.group(2).strip()):
        cast, text = _type(m.group(1)), m.group(2).strip()
    if _LITERAL.fullmatch(text):
        return "+", [_literal(text)], cast
    m = _BINARY.match(text)
    if m:
        return m.group(6), [_term(m.groups()[:5]), _term(m.groups()[6:])], cast
    m = _UNARY.match(text)
    if m:
        return ("-" if m.group(1) else "+"), [_term(m.groups()[1:])], cast
    raise _Unsupported(f"distributed-arithmetic statement '{text}'")


def parse(code: str, function: str) -> tuple[list, int, int]:
    """The statements of ``function`` in ``code``: [(target, type, sign, terms, cast)], n_in, n_out."""
    start = None
    for m in _SIGNATURE.finditer(code):
        if m.group(1) == function:
            start, n_in, n_out = m.end(), int(m.group(2)), int(m.group(3))
    if start is None:
        raise _Unsupported(f"no {function} in the generated distributed-arithmetic code")
    statements = []
    for line in code[start:].splitlines()[1:]:
        if line.startswith("}"):
            break
        line = line.split("//")[0]
        if not line.strip() or line.strip().startswith("#pragma"):
            continue
        m = _ASSIGN.match(line)
        if m:
            statements.append((m.group(2), _type(m.group(1)), *_expression(m.group(3))))
            continue
        m = _OUTPUT.match(line)
        if m:
            statements.append((int(m.group(1)), None, *_expression(m.group(2))))
            continue
        raise _Unsupported(f"distributed-arithmetic line '{line.strip()}'")
    return statements, n_in, n_out


@dataclass
class _DAStep(_Step):
    in_t: Fixed = None
    statements: list = None
    n_out: int = 0

    def __call__(self, x):
        env: dict[str, tuple[np.ndarray, int]] = {}
        zeros = np.zeros(len(x), dtype=np.int64)
        for i in range(x.shape[1]):
            env[f"model_inp[{i}]"] = (x[:, i], self.in_t.frac)
        out = np.zeros((len(x), self.n_out), dtype=np.int64)
        for target, t, sign, terms, cast in self.statements:
            values = []
            for term in terms:
                if term.name is None:
                    values.append((zeros + term.const, term.const_frac))
                else:
                    v, frac = env[term.name]
                    values.append((v, frac - term.shift))  # bit_shift<s>: same bits, binary point moved
            v, frac = values[0]
            if len(values) == 2:
                w, wf = values[1]
                f = max(frac, wf)
                a, b = v << (f - frac), w << (f - wf)
                v, frac = (a + b if sign == "+" else a - b), f
            elif sign == "-":
                v = -v
            if cast is not None:
                v, frac = cast.requantize(v, frac), cast.frac
            if t is not None:
                env[target] = (t.requantize(v, frac), t.frac)
            else:
                out[:, target] = self.out_t.requantize(v, frac)
        return out


def _da_kernel(layer, n_in: int, n_out: int) -> _DAStep:
    """The generated ``dense_da_<index>`` of ``layer`` as a step from ``n_in`` inputs (of the layer's input
    type) to ``n_out`` outputs (assigned to its result type)."""
    info = _common(layer)
    source = layer.get_attr("da_codegen")
    if source is None:
        raise _Unsupported("distributed arithmetic without generated code")
    statements, code_in, code_out = parse(str(getattr(source, "code", source)), f"dense_da_{layer.index}")
    if (code_in, code_out) != (n_in, n_out):
        raise _Unsupported(f"distributed-arithmetic code of {code_in}x{code_out} for a {n_in}x{n_out} kernel")
    return _DAStep(**{**info, "size": n_out}, statements=statements, n_out=n_out)


def da_dense_step(layer) -> _DAStep:
    n_in, size = int(np.prod(layer.get_input_variable().shape)), int(np.prod(layer.get_output_variable().shape))
    if len(layer.get_input_variable().shape) > 1:
        raise _Unsupported("distributed-arithmetic Dense on a multi-dimensional input")
    return _da_kernel(layer, n_in, size)


@dataclass
class _DAConvStep(_Step):
    """``conv1d_cl``/``conv2d_cl`` of ``nnet_da_wrappers.h`` (io_parallel): the generated fill_buffer's
    windows, and for each output pixel the adder graph of one kernel application, whose outputs the
    result array takes pixel after pixel."""

    in_t: Fixed = None
    kernel: _DAStep = None
    windows: np.ndarray = None  # (pixels, n_in): input index of every window entry; in_size for a zero

    def __call__(self, x):
        n, in_size = x.shape
        padded = np.zeros((n, in_size + 1), dtype=np.int64)  # fill_buffer writes 0 where the window pads
        padded[:, :in_size] = x
        rows = padded[:, self.windows].reshape(-1, self.windows.shape[1])
        return self.kernel(rows).reshape(n, -1)


def da_conv_step(layer, windows: np.ndarray, n_filt: int) -> _DAConvStep:
    info = _common(layer)
    return _DAConvStep(**info, kernel=_da_kernel(layer, windows.shape[1], n_filt), windows=windows)
