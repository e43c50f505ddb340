"""The NumPy firmware emulator against the real thing: ap_fixed compiled by g++, and hls4ml's C-simulation.

Without g++ only the pure-NumPy tests run. The default run compiles one ap_fixed program and
three small hls4ml projects; the reference models and the precision sweep are marked slow.
"""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeml.firmware.emulator import Emulator, emulate, unsupported_layers
from edgeml.firmware.emulator.dense import _resource_order
from edgeml.firmware.emulator.softmax import _tree_sum
from edgeml.fixed import ROUNDING_MODES, Fixed
from emulator_helpers import _activation_chain, _assert_identical, _hls4ml_model, _keras, _random_type, needs_gpp

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


# --------------------------------------------------------------------------- Fixed, without g++

def test_fixed_parses_and_prints_both_spellings():
    t = Fixed.parse("ap_ufixed<8,0,AP_RND_CONV,AP_SAT>")
    assert (t.signed, t.width, t.integer, t.rounding, t.saturation) == (False, 8, 0, "RND_CONV", "SAT")
    assert Fixed.parse("fixed<16,6,TRN,WRAP,0>") == Fixed(True, 16, 6)
    assert str(Fixed.parse("ap_fixed<10, 3, AP_RND, AP_WRAP>")) == "ap_fixed<10,3,AP_RND,AP_WRAP>"
    assert Fixed(True, 16, 6).lsb == 2 ** -10 and Fixed(True, 8, 4).range == (-8.0, 7.9375)
    with pytest.raises(ValueError, match="ap_fixed<16,6>"):
        Fixed.parse("float")


def test_quantize_rounds_ties_by_mode_then_folds():
    ties = np.array([2.5, -2.5, 3.5, -3.5, 2.25, -2.75]) / 16  # lsb 1/16
    expected = {"TRN": [2, -3, 3, -4, 2, -3], "TRN_ZERO": [2, -2, 3, -3, 2, -2], "RND": [3, -2, 4, -3, 2, -3],
                "RND_ZERO": [2, -2, 3, -3, 2, -3], "RND_MIN_INF": [2, -3, 3, -4, 2, -3],
                "RND_INF": [3, -3, 4, -4, 2, -3], "RND_CONV": [2, -2, 4, -4, 2, -3]}
    for mode in ROUNDING_MODES:
        t = Fixed(True, 8, 4, mode, "SAT")
        np.testing.assert_array_equal(t.quantize_to_ints(ties), expected[mode], err_msg=mode)
        ints = np.round(ties * 64).astype(np.int64)  # the same values with 6 fraction bits
        np.testing.assert_array_equal(t.requantize(ints, 6), expected[mode], err_msg=mode)
    np.testing.assert_array_equal(Fixed(True, 8, 4).quantize_to_ints([8.0, -8.5, np.inf]), [-128, 120, 0])
    np.testing.assert_array_equal(Fixed(True, 8, 4).quantize_to_floats([8.0, -8.5, 0.07]), [-8.0, 7.5, 0.0625])
    np.testing.assert_array_equal(Fixed(True, 8, 4, "TRN", "SAT").quantize_to_ints([8.0, -9.0, np.inf]), [127, -128, 127])


def test_resource_order_replays_the_reuse_loops():
    assert _resource_order(4, 2, 1) is None  # one pass: inputs in order
    order = _resource_order(4, 2, 2)  # two passes, even inputs first
    np.testing.assert_array_equal(order, [[0, 2, 1, 3], [0, 2, 1, 3]])
    assert _resource_order(2, 4, 4) is None  # RF > n_in: each pass adds one input to its outputs, in order


def test_tree_sum_saturates_per_addition_in_hls4ml_order():
    t = Fixed(True, 4, 4, "TRN", "SAT")  # integers in [-8, 7]
    terms = [np.array([v]) for v in (7, 7, -8, -8, 5)]
    # reduce<5>: ((7+7) + (-8-8)) + 5 = (7 + -8) + 5 = 4; a flat sum would give 3
    assert _tree_sum(terms, t)[0] == 4


# --------------------------------------------------------------------------- ap_fixed compiled by g++

AP_KINDS = [("ap_fixed", 8, 3), ("ap_ufixed", 6, 2), ("ap_fixed", 5, 7), ("ap_fixed", 6, -1)]


@needs_gpp
def test_fixed_conversions_match_ap_fixed_for_every_mode(tmp_path):
    """Double -> ap_fixed and ap_fixed<48,24> -> ap_fixed, for 7 rounding x 2 overflow modes x 4 shapes."""
    import hls4ml

    types = [Fixed(kind == "ap_fixed", w, i, q, o) for kind, w, i in AP_KINDS for q in ROUNDING_MODES
             for o in ("SAT", "WRAP")]
    body = "".join(f"    run<ap_{'' if t.signed else 'u'}fixed<{t.width}, {t.integer}, AP_{t.rounding}, "
                   f"AP_{t.saturation}> >(xs, {t.frac});\n" for t in types)
    source = tmp_path / "conv.cpp"
    source.write_text(
        '#include "ap_fixed.h"\n#include <cmath>\n#include <cstdio>\n#include <cstdlib>\n#include <vector>\n'
        "template <class T> void run(const std::vector<double>& xs, int frac) {\n"
        '    for (double x : xs) { T t = x; printf("%.0f ", std::ldexp(t.to_double(), frac)); }\n'
        '    printf("\\n");\n'
        "    for (double x : xs) { ap_fixed<48, 24> s = std::isinf(x) ? 0.0 : x; T t = s;\n"
        '        printf("%.0f ", std::ldexp(t.to_double(), frac)); }\n'
        '    printf("\\n");\n}\n'
        "int main() {\n    std::vector<double> xs; char buf[64];\n"
        '    while (scanf("%63s", buf) == 1) xs.push_back(strtod(buf, 0));\n' + body + "}\n")
    ap_types = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    subprocess.run(["g++", "-O1", "-std=c++14", f"-I{ap_types}", str(source), "-o", str(tmp_path / "conv")],
                   check=True, capture_output=True)
    rng = np.random.default_rng(7)
    grid = np.arange(-700, 700) / 64  # every tie of the shapes above, and overflow on both sides
    xs = np.concatenate([grid, rng.normal(0, 3, 300), rng.normal(0, 300, 100), [0.0, -0.0, 1e-30, -1e-30, 1e30,
                                                                                -1e30, np.inf, -np.inf]])
    xs = np.ldexp(np.round(np.ldexp(xs, 24)), -24)  # exact in ap_fixed<48,24> (the second line's source)
    xs[-2:] = [np.inf, -np.inf]
    out = subprocess.run([str(tmp_path / "conv")], input=" ".join(float(x).hex() for x in xs), text=True,
                         capture_output=True, check=True).stdout.splitlines()
    finite = np.isfinite(xs) & (np.abs(xs) < 2 ** 23)
    for k, t in enumerate(types):
        from_double = np.array(out[2 * k].split(), dtype=np.float64)
        from_fixed = np.array(out[2 * k + 1].split(), dtype=np.float64)
        np.testing.assert_array_equal(t.quantize_to_ints(xs), from_double, err_msg=f"double -> {t}")
        np.testing.assert_array_equal(t.quantize_to_ints(xs[finite]), from_double[finite],  # the one-call path
                                      err_msg=f"double -> {t}")
        ints = np.round(np.ldexp(xs[finite], 24)).astype(np.int64)
        np.testing.assert_array_equal(t.requantize(ints, 24), from_fixed[finite], err_msg=f"ap_fixed<48,24> -> {t}")


WIDE_PROGRAM = """
#include "ap_fixed.h"
#include <cmath>
#include <cstdio>
template <class T> void run(const ap_fixed<48, 20>* x, const ap_fixed<40, 12>* a, int n, int frac) {
    for (int i = 0; i < n; i++) { T r = x[i] * a[i]; printf("%.0f ", std::ldexp(r.to_double(), frac)); }
    printf("\\n");
}
int main() {
    static ap_fixed<48, 20> x[4096]; static ap_fixed<40, 12> a[4096]; double u, v; int n = 0;
    while (scanf("%lf %lf", &u, &v) == 2) { x[n] = u; a[n] = v; n++; }
"""


@needs_gpp
def test_wide_products_cast_like_ap_fixed(tmp_path):
    """ap_fixed<48,20> * ap_fixed<40,12> (up to 86 bits) cast to narrow types in every mode: the int64 stand-in
    of _wide_stand_in gives ap_fixed's result, ties and saturation included."""
    import hls4ml

    from edgeml.firmware.emulator.activations import _wide_stand_in

    shapes = [(True, 12, 4), (False, 10, 4), (True, 20, -4), (True, 9, 1)]
    types = [Fixed(signed, w, i, q, o) for signed, w, i in shapes for q in ROUNDING_MODES for o in ("SAT", "WRAP")]
    body = "".join(f"    run<ap_{'' if t.signed else 'u'}fixed<{t.width}, {t.integer}, AP_{t.rounding}, "
                   f"AP_{t.saturation}> >(x, a, n, {t.frac});\n" for t in types)
    (tmp_path / "wide.cpp").write_text(WIDE_PROGRAM + body + "}\n")
    ap_types = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    subprocess.run(["g++", "-O1", "-std=c++14", f"-I{ap_types}", str(tmp_path / "wide.cpp"), "-o", str(tmp_path / "wide")],
                   check=True, capture_output=True)
    rng = np.random.default_rng(11)
    n = 1500
    x = np.concatenate([rng.integers(-2 ** 47, 2 ** 47, n), rng.integers(-2 ** 30, 2 ** 30, n),
                        (2 * rng.integers(-2 ** 38, 2 ** 38, 200) + 1) << 8, [0, -2 ** 47, 2 ** 47 - 1, 5]])
    a = np.concatenate([rng.integers(-2 ** 39, 2 ** 39, n), rng.integers(-2 ** 20, 2 ** 20, n),
                        rng.choice([-2 ** 39, 2 ** 38, -2 ** 37], 200), [-2 ** 39, -2 ** 39, -2 ** 39, 0]])
    text = " ".join(f"{float(np.ldexp(float(u), -28)).hex()} {float(np.ldexp(float(v), -28)).hex()}" for u, v in zip(x, a))
    out = subprocess.run([str(tmp_path / "wide")], input=text, text=True, capture_output=True, check=True).stdout
    big = np.abs(x.astype(np.float64) * a) >= 2.0 ** 63
    assert big.mean() > 0.3 and len(out.splitlines()) == len(types)  # most products pass int64
    for t, line in zip(types, out.splitlines()):
        with np.errstate(over="ignore"):
            low = x * a  # wraps modulo 2**64
        ours = t.requantize(_wide_stand_in(low, x, a, t, 56), 56)
        np.testing.assert_array_equal(ours, np.array(line.split(), dtype=np.float64), err_msg=str(t))


TABLE_PROGRAM = """
#include "nnet_utils/nnet_activation.h"
#include <cmath>
#include <cstdio>
struct cfg {
    static const unsigned table_size = 1024, exp_table_size = 512, inv_table_size = 256;
    static constexpr float exp_scale = 0.75;
    typedef ap_fixed<48, 8> table_t;
    typedef ap_fixed<48, 8> exp_table_t;
    typedef ap_fixed<48, 8> inv_table_t;
};
template <class T, int N> void print(const T (&t)[N]) {
    for (int i = 0; i < N; i++) printf("%.0f ", std::ldexp(t[i].to_double(), 40));
    printf("\\n");
}
int main() {
    static cfg::table_t t[1024], e[512], v[256];
    nnet::init_tanh_table<cfg, 1024>(t); print(t);
    nnet::init_sigmoid_table<cfg, 1024>(t); print(t);
    nnet::init_exp_table_legacy<cfg, 1024>(t); print(t);
    nnet::init_invert_table_legacy<cfg, 1024>(t); print(t);
    nnet::init_exp_table<ap_fixed<12, 4>, cfg>(e); print(e);
    nnet::init_exp_table<ap_ufixed<11, 3>, cfg>(e, true); print(e);
    nnet::init_invert_table<ap_fixed<14, 6>, cfg>(v); print(v);
    nnet::init_elu_table<cfg, 1024>(t); print(t);
    nnet::init_selu_table<cfg, 1024>(t); print(t);
    nnet::init_softplus_table<cfg, 1024>(t); print(t);
    nnet::init_softsign_table<cfg, 1024>(t); print(t);
}
"""


@needs_gpp
def test_tables_are_built_like_the_cpp_tables(tmp_path):
    """float32 libm (tanhf, expf) and the float/double mix of each init function, seen through a 40-bit fraction."""
    import hls4ml

    from edgeml.firmware.emulator import tables as em
    from edgeml.firmware.emulator.softmax import _float_of_top_bits

    templates = Path(hls4ml.__file__).parent / "templates" / "vivado"
    (tmp_path / "tables.cpp").write_text(TABLE_PROGRAM)
    subprocess.run(["g++", "-O1", "-std=c++14", f"-I{templates}", f"-I{templates / 'ap_types'}",
                    str(tmp_path / "tables.cpp"), "-o", str(tmp_path / "tables")], check=True, capture_output=True)
    lines = subprocess.run([str(tmp_path / "tables")], capture_output=True, text=True, check=True).stdout.splitlines()
    wide = Fixed(True, 48, 8)
    scale = np.float32(0.75)
    with np.errstate(divide="ignore"):
        ours = [em._tanh_table(1024), em._sigmoid_table(1024), em._legacy_exp_table(1024),
                em._legacy_inv_table(1024),
                em._expf(_float_of_top_bits(Fixed(True, 12, 4), 512) * scale),
                em._expf(-(_float_of_top_bits(Fixed(False, 11, 3), 512) * scale)),
                np.float32(1) / _float_of_top_bits(Fixed(True, 14, 6), 256),
                em._elu_table(1024), em._selu_table(1024), em._softplus_table(1024), em._softsign_table(1024)]
    names = ["tanh", "sigmoid", "legacy exp", "legacy invert", "exp", "exp (stable)", "invert", "elu", "selu",
             "softplus", "softsign"]
    assert len(lines) == len(names)
    for name, line, table in zip(names, lines, ours):
        np.testing.assert_array_equal(wide.quantize_to_ints(table), np.array(line.split(), dtype=np.float64),
                                      err_msg=name)


# --------------------------------------------------------------------------- hls4ml C-simulation

def _csim_and_emulate(hls_model, X):
    from edgeml.simulate import compile_model, run

    assert unsupported_layers(hls_model) == []
    compile_model(hls_model)
    y, traces = run(hls_model, X)
    result = emulate(hls_model, X)
    return y, traces, result


@needs_gpp
def test_mixed_precision_model_is_bit_exact(tmp_path):
    """Dense (Latency, and Resource with RF <= n_in and RF > n_in) with every rounding mode in weights, accum and
    results, two standalone BatchNorms, tanh, sigmoid, relu, and a latency softmax with non-default
    table size and table types."""
    import tensorflow as tf

    L = tf.keras.layers
    model = _keras([L.Dense(12, name="d1"), L.Activation("tanh", name="t1"), L.BatchNormalization(name="bn"),
                    L.Dense(10, name="d2"), L.Activation("sigmoid", name="s1"), L.Dense(8, name="d3"),
                    L.BatchNormalization(name="bnf"), L.ReLU(name="r1"), L.Dense(5, name="d4"),
                    L.Activation("softmax", name="sm")], 10, seed=3)
    for name in ("bn", "bnf"):  # a positive variance
        bn = model.get_layer(name)
        bn.set_weights([np.abs(w) + 0.5 if k == 3 else w for k, w in enumerate(bn.get_weights())])
    layers = {
        "d1": {"Precision": {"weight": "ap_fixed<8,3,AP_RND_CONV,AP_SAT>", "bias": "ap_fixed<8,3,AP_RND,AP_WRAP>",
                             "accum": "ap_fixed<12,4,AP_RND,AP_SAT>", "result": "ap_fixed<10,3,AP_RND_ZERO,AP_SAT>"}},
        "t1": {"Precision": {"result": "ap_fixed<9,2,AP_RND_INF,AP_SAT>", "table": "ap_fixed<12,2,AP_RND,AP_SAT>"},
               "TableSize": 512},
        "bn": {"Precision": {"scale": "ap_fixed<10,3,AP_TRN_ZERO,AP_SAT>", "bias": "ap_fixed<10,3>",
                             "result": "ap_fixed<11,4,AP_RND_MIN_INF,AP_WRAP>"}},
        "d2": {"Strategy": "Resource", "ReuseFactor": 2,
               "Precision": {"weight": "ap_fixed<7,2,AP_TRN_ZERO,AP_WRAP>", "bias": "ap_fixed<9,4>",
                             "accum": "ap_fixed<11,5,AP_TRN,AP_WRAP>", "result": "ap_fixed<12,6>"}},
        "s1": {"Precision": {"result": "ap_ufixed<8,0,AP_RND_CONV,AP_SAT>", "table": "ap_fixed<18,8>"},
               "TableSize": 2048},
        "d3": {"Strategy": "Resource", "ReuseFactor": 5,
               "Precision": {"weight": "ap_fixed<6,2,AP_RND_INF,AP_SAT>", "bias": "ap_fixed<6,2>",
                             "accum": "ap_fixed<10,4,AP_RND_MIN_INF,AP_SAT>", "result": "ap_fixed<9,4,AP_RND,AP_WRAP>"}},
        "r1": {"Precision": {"result": "ap_ufixed<6,2,AP_RND_CONV,AP_SAT>"}},
        "d4": {"Strategy": "Resource", "ReuseFactor": 40,
               "Precision": {"weight": "ap_fixed<8,3>", "bias": "ap_fixed<8,3>", "accum": "ap_fixed<14,6>",
                             "result": "ap_fixed<10,5,AP_RND,AP_SAT>"}},
        "sm": {"Implementation": "latency", "TableSize": 512, "Precision": {"result": "ap_ufixed<10,0,AP_RND,AP_SAT>"}},
    }
    tables = {"sm": {"exp_table": "ap_ufixed<14,6,AP_RND,AP_SAT>", "inv_table": "ap_ufixed<14,4,AP_RND_CONV,AP_SAT>",
                     "inv_inp": "ap_ufixed<12,6,AP_RND,AP_SAT>"}}
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj", tables)
    X = np.random.default_rng(0).normal(0, 2, (3000, 10))
    y, traces, result = _csim_and_emulate(hls_model, X)
    _assert_identical(y, traces, result)
    assert {"d1", "t1", "bn", "d2", "s1", "d3", "r1", "d4", "sm"} <= set(traces)
    strategies = {name: hls_model.graph[name].get_attr("strategy").lower() for name in ("d1", "d2", "d3", "d4")}
    assert strategies == {"d1": "latency", "d2": "resource", "d3": "resource", "d4": "resource"}
    assert [hls_model.graph[name].get_attr("reuse_factor") for name in ("d2", "d3", "d4")] == [2, 5, 40]


@needs_gpp
def test_qkeras_quantizers_are_bit_exact(tmp_path):
    """QDense with alpha=1 and alpha='auto' (hls4ml's ApplyAlpha), a BatchNorm folded into a Dense and one kept
    after a QDense, QActivation quantized_relu and quantized_bits."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(2)
    model = tf.keras.Sequential([
        tf.keras.layers.Input((8,)),
        tf.keras.layers.Dense(8, name="p0"),
        tf.keras.layers.BatchNormalization(name="bnp"),
        QDense(10, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
               name="q1"),
        tf.keras.layers.BatchNormalization(name="bnq"),
        QActivation(quantized_relu(6, 2), name="qr1"),
        QDense(8, kernel_quantizer=quantized_bits(4, 0, alpha="auto"), bias_quantizer=quantized_bits(8, 3),
               name="q2"),
        QActivation(quantized_bits(8, 3, alpha=1), name="qb2"),
        QDense(5, kernel_quantizer=quantized_bits(8, 2, alpha=1), bias_quantizer=quantized_bits(8, 2, alpha=1),
               name="q3"),
        tf.keras.layers.Activation("softmax", name="sm")])
    hls_model = _hls4ml_model(model, {}, tmp_path / "prj")
    X = np.random.default_rng(3).normal(0, 2, (3000, 8))
    y, traces, result = _csim_and_emulate(hls_model, X)
    _assert_identical(y, traces, result)
    kinds = {layer.class_name for layer in hls_model.get_layers()}
    assert "ApplyAlpha" in kinds and "bnq" in traces and "bnp" not in traces, (kinds, list(traces))


@needs_gpp
def test_power_of_two_alpha_is_bit_exact(tmp_path):
    """QDense with alpha='auto_po2': hls4ml scales by shifts (an exponent-typed ApplyAlpha), right and left."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    L = tf.keras.layers
    model = _keras([QDense(12, kernel_quantizer=quantized_bits(6, 0, alpha="auto_po2"),
                           bias_quantizer=quantized_bits(8, 3), name="q1"),
                    QActivation(quantized_relu(8, 3), name="qr1"),
                    QDense(5, kernel_quantizer=quantized_bits(4, 0, alpha="auto_po2"),
                           bias_quantizer=quantized_bits(8, 3), name="q2"),
                    L.Activation("softmax", name="sm")], 10, seed=4)
    model.get_layer("q1").set_weights([w * np.geomspace(0.05, 4, 12) if w.ndim > 1 else w
                                       for w in model.get_layer("q1").get_weights()])  # spread the scales
    model.predict(np.zeros((1, 10)), verbose=0)  # QKeras sets auto_po2 scales on a call
    hls_model = _hls4ml_model(model, {}, tmp_path / "prj")
    shifts = {int(text.split(",")[1].strip(" }")) for text in hls_model.graph["q1_alpha"].weights["scale"]}
    assert min(shifts) < 0 <= max(shifts), shifts
    X = np.random.default_rng(5).normal(0, 2, (3000, 10))
    y, traces, result = _csim_and_emulate(hls_model, X)
    _assert_identical(y, traces, result)
    assert {"q1_alpha", "q2_alpha"} <= set(traces)


@needs_gpp
def test_every_softmax_implementation_is_bit_exact(tmp_path):
    """legacy, stable, latency and argmax softmax in one chain (each followed by a Dense)."""
    import tensorflow as tf

    L = tf.keras.layers
    chain, layers = [], {}
    for k, impl in enumerate(("legacy", "stable", "latency", "argmax")):
        chain += [L.Dense(6, name=f"d{k}"), L.Activation("softmax", name=f"sm{k}")]
        layers[f"sm{k}"] = {"Implementation": impl, "TableSize": 256 if impl == "stable" else 1024,
                            "Precision": {"result": "ap_fixed<12,2,AP_RND,AP_SAT>"}}
        layers[f"d{k}"] = {"Precision": {"weight": "ap_fixed<10,4>", "bias": "ap_fixed<10,4>",
                                         "accum": "ap_fixed<18,8>", "result": "ap_fixed<12,5,AP_RND,AP_SAT>"}}
    model = _keras(chain, 8, seed=5)
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj")
    X = np.random.default_rng(1).normal(0, 2, (3000, 8))
    y, traces, result = _csim_and_emulate(hls_model, X)
    _assert_identical(y, traces, result)
    assert {"sm0", "sm1", "sm2", "sm3"} <= set(traces)


@needs_gpp
def test_parametrized_activations_are_bit_exact(tmp_path):
    """LeakyReLU (its own alpha type), ELU (alpha 0.7 and 1, table size and type), PReLU on a 40-bit input (the
    path for products that may pass int64; test_wide_products_cast_like_ap_fixed makes them do so),
    ThresholdedReLU with a finer theta type than its input, QKeras leaky quantized_relu. Input types with more fraction bits than the table index uses."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_relu

    L = tf.keras.layers
    model, layers = _activation_chain([
        (L.LeakyReLU(0.3, name="lk"), "ap_fixed<12,5,AP_RND,AP_SAT>",
         {"Precision": {"result": "ap_fixed<9,3,AP_RND_CONV,AP_SAT>", "param": "ap_fixed<6,0,AP_RND,AP_SAT>"}}),
        (L.ELU(0.7, name="el"), "ap_fixed<14,5,AP_TRN,AP_WRAP>",
         {"TableSize": 512, "Precision": {"result": "ap_fixed<10,3,AP_RND_ZERO,AP_SAT>",
                                          "table": "ap_fixed<12,2,AP_RND,AP_SAT>"}}),
        (L.PReLU(name="pr"), "ap_fixed<40,12,AP_RND,AP_SAT>",
         {"Precision": {"result": "ap_fixed<12,4,AP_TRN_ZERO,AP_WRAP>"}}),
        (L.PReLU(name="pr2"), "ap_fixed<40,12,AP_RND,AP_SAT>", {"Precision": {"result": "ap_fixed<10,3,AP_RND,AP_SAT>"}}),
        (L.ThresholdedReLU(0.37, name="th"), "ap_fixed<10,4,AP_RND,AP_SAT>",
         {"Precision": {"result": "ap_ufixed<8,3,AP_RND,AP_SAT>", "param": "ap_fixed<16,4>"}}),
        (QActivation(quantized_relu(8, 3, negative_slope=0.25), name="ql"), "ap_fixed<12,5,AP_RND,AP_SAT>", {}),
        (L.Activation("elu", name="e1"), "ap_fixed<15,5,AP_RND,AP_SAT>", {})], seed=6)
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj")
    kinds = {layer.name: layer.class_name for layer in hls_model.get_layers()}
    assert [kinds[name] for name in ("lk", "el", "pr", "th", "ql", "e1")] == \
        ["ParametrizedActivation", "ParametrizedActivation", "PReLU", "ParametrizedActivation",
         "ParametrizedActivation", "ParametrizedActivation"]
    steps = {step.name: step for step in Emulator(hls_model).steps}
    assert steps["pr"].wide and steps["pr2"].wide
    X = np.random.default_rng(6).normal(0, 2, (3000, 8))
    y, traces, result = _csim_and_emulate(hls_model, X)
    _assert_identical(y, traces, result)
    assert {"lk", "el", "pr", "pr2", "th", "ql", "e1"} <= set(traces)
    assert (traces["d1"] < -8).any()  # the ELU table is clamped


@needs_gpp
def test_table_and_hard_activations_are_bit_exact(tmp_path):
    """selu, softplus, softsign (table sizes and types, tables clamped at both ends), Keras hard_sigmoid and
    QKeras quantized_tanh / quantized_sigmoid (hls4ml's hard_tanh / hard_sigmoid)."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_sigmoid, quantized_tanh

    L = tf.keras.layers
    model, layers = _activation_chain([
        (L.Activation("selu", name="se"), "ap_fixed<16,5,AP_RND_MIN_INF,AP_SAT>",
         {"TableSize": 2048, "Precision": {"result": "ap_fixed<9,2,AP_RND_INF,AP_WRAP>"}}),
        (L.Activation("softplus", name="sp"), "ap_fixed<12,5>",
         {"TableSize": 256, "Precision": {"result": "ap_ufixed<7,2,AP_RND,AP_SAT>"}}),
        (L.Activation("softsign", name="ss"), "ap_fixed<13,6,AP_RND,AP_SAT>",
         {"Precision": {"result": "ap_fixed<8,1,AP_RND_CONV,AP_SAT>", "table": "ap_fixed<10,1,AP_RND,AP_SAT>"}}),
        (L.Activation("hard_sigmoid", name="hs"), "ap_fixed<14,6,AP_RND,AP_WRAP>",
         {"Precision": {"result": "ap_ufixed<8,1,AP_TRN,AP_SAT>"}}),
        (QActivation(quantized_tanh(6), name="qt"), "ap_fixed<10,4,AP_TRN_ZERO,AP_SAT>", {}),
        (QActivation(quantized_sigmoid(8), name="qs"), "ap_fixed<12,5,AP_RND,AP_SAT>", {})], seed=7)
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj")
    kinds = {layer.name: layer.class_name for layer in hls_model.get_layers()}
    assert [kinds[name] for name in ("se", "sp", "ss", "hs", "qt", "qs")] == ["Activation"] * 3 + ["HardActivation"] * 3
    X = np.random.default_rng(7).normal(0, 2, (3000, 8))
    y, traces, result = _csim_and_emulate(hls_model, X)
    _assert_identical(y, traces, result)
    assert {"se", "sp", "ss", "hs", "qt", "qs"} <= set(traces)
    for k in (0, 1, 2):  # tables clamped at both ends
        assert (traces[f"d{k}"] < -8).any() and (traces[f"d{k}"] > 8).any(), k
    assert ((traces["hs"] == 1) & (traces["d3"] < 5)).any()  # hard_sigmoid clipped at 1, representable here


def _edgeml_model(model_path: Path, out_dir, overrides: dict | None = None):
    from edgeml import config
    from edgeml.modelio import load_model

    try:
        from edgeml.firmware import build_hls_model
    except ImportError:
        from edgeml.convert import build_hls_model
    hls = config.defaults()["hls"]
    hls.update(overrides or {})
    built = build_hls_model(load_model(model_path), hls, out_dir)
    return built[0] if isinstance(built, tuple) else built


def _jets(model_path: Path, n: int) -> np.ndarray:
    from edgeml.data import Scaler, load_jets

    jets = load_jets("default")
    X = jets.X[np.random.default_rng(0).integers(0, len(jets.X), n)]
    scaler = model_path.with_name(f"{model_path.stem}_scaler.json")
    return (Scaler.load(scaler).transform(X) if scaler.is_file() else X).astype(np.float32)


@needs_gpp
def test_qkeras_tagger_is_bit_exact(tmp_path):
    path = ROOT / "models" / "tutorial_qkeras.h5"
    hls_model = _edgeml_model(path, tmp_path / "prj")
    y, traces, result = _csim_and_emulate(hls_model, _jets(path, 2000))
    _assert_identical(y, traces, result)


def test_emulator_refuses_what_it_does_not_cover(tmp_path):
    import tensorflow as tf
    from qkeras import QActivation, ternary

    L = tf.keras.layers
    model = _keras([L.Dense(4, name="d"), QActivation(ternary(), name="tern"), L.Dense(3, name="out")], 4, seed=1)
    hls_model = _hls4ml_model(model, {}, tmp_path / "prj")
    assert [entry.split(" ")[0] for entry in unsupported_layers(hls_model)] == ["tern"]
    with pytest.raises(Exception, match="tern"):
        Emulator(hls_model)


# --------------------------------------------------------------------------- slow: reference models and sweep

REFERENCE = [ROOT / "models" / "baseline.h5", ROOT / "models" / "edgeml_compact.h5",
             FIXTURES / "keras21_dense.json", FIXTURES / "keras224_dense_full.h5",
             FIXTURES / "keras224_qkeras_pruned.json"]


@pytest.mark.slow
@needs_gpp
@pytest.mark.parametrize("path", REFERENCE, ids=lambda p: p.stem)
def test_reference_models_are_bit_exact(path, tmp_path):
    hls_model = _edgeml_model(path, tmp_path / "prj")
    y, traces, result = _csim_and_emulate(hls_model, _jets(path, 5000))
    _assert_identical(y, traces, result)


@pytest.mark.slow
@needs_gpp
def test_softmax_table_size_and_types_through_edgeml(tmp_path):
    path = ROOT / "models" / "baseline.h5"
    overrides = {"LayerName": {"softmax": {"TableSize": 256, "Precision": {
        "exp_table": "ap_fixed<14,5,AP_RND,AP_SAT>", "inv_table": "ap_fixed<14,5,AP_RND,AP_SAT>",
        "inv_inp": "ap_fixed<14,6,AP_RND,AP_SAT>", "inp_norm": "ap_ufixed<12,5,AP_RND,AP_SAT>"}}}}
    hls_model = _edgeml_model(path, tmp_path / "prj", overrides)
    y, traces, result = _csim_and_emulate(hls_model, _jets(path, 5000))
    _assert_identical(y, traces, result)


def _valid_reuse(n_in: int, n_out: int) -> list[int]:
    """Reuse factors hls4ml keeps for a Resource Dense (FPGABackend.set_closest_reuse_factor's rule)."""
    return [rf for rf in range(1, n_in * n_out + 1) if n_in * n_out % rf == 0
            and ((rf <= n_in and -(-n_in * n_out // rf) % n_out == 0) or (rf > n_in and rf % n_in == 0))]


@pytest.mark.slow
@needs_gpp
@pytest.mark.parametrize("seed", range(6))
def test_random_dense_precisions_sweep(seed, tmp_path):
    """Random weights and random types (every rounding and overflow mode), Latency and Resource strategies."""
    import tensorflow as tf

    L = tf.keras.layers
    rng = np.random.default_rng(100 + seed)
    sizes = [int(v) for v in rng.integers(3, 12, 3)]
    chain, layers = [], {}
    for k, (n_in, n) in enumerate(zip([6] + sizes, sizes)):
        chain += [L.Dense(n, name=f"d{k}"), L.ReLU(name=f"r{k}") if k % 2 else L.Activation("linear", name=f"a{k}")]
        layers[f"d{k}"] = {"Precision": {kind: _random_type(rng) for kind in ("weight", "bias", "accum", "result")}}
        if seed % 2:
            layers[f"d{k}"].update(Strategy="Resource", ReuseFactor=int(rng.choice(_valid_reuse(n_in, n))))
        layers[chain[-1].name] = {"Precision": {"result": _random_type(rng, signed=bool(k % 2 == 0))}}
    model = _keras(chain, 6, seed=seed)
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj")
    for name, entry in layers.items():
        if "ReuseFactor" in entry:
            assert hls_model.graph[name].get_attr("reuse_factor") == entry["ReuseFactor"], name
    X = np.random.default_rng(seed).normal(0, 4, (2000, 6))
    y, traces, result = _csim_and_emulate(hls_model, X)
    _assert_identical(y, traces, result)


@pytest.mark.slow
@needs_gpp
@pytest.mark.parametrize("seed", range(3))
def test_random_activation_precisions_sweep(seed, tmp_path):
    """The parametrized, table and hard activations with random input, result, parameter and table types
    (every rounding and overflow mode, signed and unsigned results) and random table sizes."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_relu, quantized_sigmoid, quantized_tanh

    L = tf.keras.layers
    rng = np.random.default_rng(200 + seed)

    def typed(signed=True):  # at least one fraction bit: the table index needs one
        width = int(rng.integers(5, 17))
        integer = int(rng.integers(0 if signed else -1, min(width, 7)))
        rounding, saturation = rng.choice(ROUNDING_MODES), rng.choice(["SAT", "WRAP"])
        return f"ap_{'' if signed else 'u'}fixed<{width},{integer},AP_{rounding},AP_{saturation}>"

    def config(table=False, param=False):
        entry = {"Precision": {"result": typed(signed=bool(rng.integers(0, 2)))}}
        if table:
            entry["TableSize"] = int(rng.choice([128, 256, 1024, 4096]))
            entry["Precision"]["table"] = typed()
        if param:
            entry["Precision"]["param"] = f"ap_fixed<{int(rng.integers(4, 12))},{int(rng.integers(-1, 3))}>"
        return entry

    model, layers = _activation_chain([
        (L.LeakyReLU(float(rng.uniform(0.01, 0.5)), name="lk"), typed(), config(param=True)),
        (L.ELU(float(rng.uniform(0.2, 2)), name="el"), typed(), config(table=True, param=True)),
        (L.PReLU(name="pr"), typed(), config()),
        (L.ThresholdedReLU(float(rng.uniform(0, 1)), name="th"), typed(), config(param=True)),
        (L.Activation("selu", name="se"), typed(), config(table=True)),
        (L.Activation("softplus", name="sp"), typed(), config(table=True)),
        (L.Activation("softsign", name="ss"), typed(), config(table=True)),
        (L.Activation("hard_sigmoid", name="hs"), typed(), config()),
        (QActivation(quantized_tanh(int(rng.integers(3, 10))), name="qt"), typed(), {}),
        (QActivation(quantized_sigmoid(int(rng.integers(3, 10))), name="qs"), typed(), {}),
        (QActivation(quantized_relu(8, 3, negative_slope=float(rng.choice([0.5, 0.25, 0.125]))), name="ql"),
         typed(), {})], seed=300 + seed)
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj")
    X = np.random.default_rng(seed).normal(0, 3, (3000, 8))
    y, traces, result = _csim_and_emulate(hls_model, X)
    _assert_identical(y, traces, result)


def test_distributed_arithmetic_code_with_constant_literals_is_replayed_exactly():
    """da4ml writes a value whose weights were all pruned as a literal (``v1 = 0.0;``) and a negated output as
    ``T(-v)``: exact constants and negations, not reasons to fall back to the C-simulation."""
    from edgeml.firmware.emulator.distributed import _DAStep, parse

    code = """void dense_da_3(inp_t model_inp[2], out_t model_out[5]) {
    ap_fixed<8,4> v0 = model_inp[0]; // 0.0
    ap_ufixed<1,0> v1 = 0.0; // 0.0
    ap_fixed<6,2> v2 = 0.75;
    ap_fixed<10,5> v3 = v0 + bit_shift<-1>(v0);
    model_out[0] = v3;
    model_out[1] = v1;
    model_out[2] = v3 - v2;
    model_out[3] = ap_fixed<10,5>(-bit_shift<-1>(v3));
    model_out[4] = ap_fixed<9,5>(-v0);
}"""
    statements, n_in, n_out = parse(code, "dense_da_3")
    assert (n_in, n_out) == (2, 5)
    in_t, out_t = Fixed(True, 8, 4), Fixed(True, 16, 6)
    step = _DAStep(name="fc", input="x", output="y", variable="y", out_t=out_t, size=5, in_t=in_t,
                   statements=statements, n_out=5)
    x = np.array([[0.5, 1.0], [-2.25, 0.0], [7.9375, 3.0]])
    got = out_t.to_float(step(in_t.quantize_to_ints(x)))
    np.testing.assert_array_equal(got, [[0.75, 0.0, 0.0, -0.375, -0.5], [-3.375, 0.0, -4.125, 1.6875, 2.25],
                                        [11.90625, 0.0, 11.15625, -5.96875, -7.9375]])  # -5.953125 truncated to 1/32
