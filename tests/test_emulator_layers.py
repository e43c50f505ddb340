"""The emulator's pooling, merge, reshaping layers, multiple inputs and outputs, and io_stream, against hls4ml's
traced C-simulation: every layer's trace and every output must be identical.

Random weights and random fixed-point types (every rounding and overflow mode). The default run compiles
three hls4ml projects (one io_parallel and one io_stream model of many layers, and an io_stream chain of Dense
and some activations); more random draws of each, and the chain of every activation, are marked slow.
"""

import numpy as np
import pytest

from edgeml.firmware.emulator import Emulator, emulate, unsupported_layers
from edgeml.fixed import ROUNDING_MODES
from emulator_helpers import _hls4ml_model, needs_gpp


def _csim_trace(hls_model, X: list) -> tuple[list, dict]:
    """hls4ml's own traced C-simulation (it takes several inputs): outputs as a list, traces as (n, size).

    Clone layers are not traced: hls4ml files each of their outputs under the layer's name, one buffer
    for several variables, and its ``trace`` then reads past the filled entries."""
    from edgeml.firmware.csim import enable_tracing
    from edgeml.simulate import quiet

    enable_tracing(hls_model)
    for layer in hls_model.get_layers():
        if layer.class_name == "Clone":
            layer.set_attr("trace", False)
    X = [np.ascontiguousarray(x, dtype=np.float64) for x in X]
    with quiet():
        y, traces = hls_model.trace(X if len(X) > 1 else X[0])
    y = y if isinstance(y, list) else [y]
    return y, {name: v.reshape(len(v), -1) for name, v in traces.items()}


def _assert_bit_exact(hls_model, X: list) -> dict:
    """C-simulation and emulation of ``X`` (one array per input) agree in every traced layer and output."""
    assert unsupported_layers(hls_model) == []
    y, traces = _csim_trace(hls_model, X)
    result = emulate(hls_model, X if len(X) > 1 else X[0])
    outputs = result.outputs if isinstance(result.outputs, list) else [result.outputs]
    assert len(outputs) == len(y) == len(hls_model.get_output_variables())
    for name, values in traces.items():
        np.testing.assert_array_equal(result.traces[name], values, err_msg=f"layer {name}")
    for k, (ours, theirs) in enumerate(zip(outputs, y)):
        np.testing.assert_array_equal(ours, theirs.reshape(len(theirs), -1), err_msg=f"output {k}")
    return traces


def _randomize(model, rng):
    """Spread weights so that rounding and overflow happen; BatchNorm variances positive."""
    for layer in model.layers:
        weights = [rng.normal(0, 1.2, w.shape) for w in layer.get_weights()]
        if type(layer).__name__ == "BatchNormalization":
            weights[3] = np.abs(weights[3]) + 0.5
        layer.set_weights(weights)


def _random_layer_type(rng, signed=True) -> str:
    """A random type with integer and fraction bits >= 0, all modes. (Wider draws make the C-simulation abort:
    ap_fixed's conversion from a type with integer bits < 0 to one whose lsb lies above the source's top bit
    reads a bit beyond the source's width, an ap_private assertion.)"""
    width = int(rng.integers(5, 16))
    integer = int(rng.integers(0, min(width, 7) + 1))
    rounding, saturation = rng.choice(ROUNDING_MODES), rng.choice(["SAT", "WRAP"])
    return f"ap_{'' if signed else 'u'}fixed<{width},{integer},AP_{rounding},AP_{saturation}>"


def _typed(rng, kinds=("result",), signed=True):
    return {"Precision": {kind: _random_layer_type(rng, signed=signed) for kind in kinds}}


POOLS = ("accum", "result")


def _parallel_model(rng):
    """Three inputs (image, sequence, vector), three outputs. Pooling with padding ('same'), strides other than
    the pool, an unsigned input to a padded max pool; every merge, broadcasting, the three concatenation axes."""
    import tensorflow as tf

    L = tf.keras.layers
    img, seq, vec = L.Input((9, 7, 3), name="img"), L.Input((12, 4), name="seq"), L.Input((6,), name="vec")
    zp = L.ZeroPadding2D(((1, 2), (0, 1)), name="zp")(img)
    mp = L.MaxPooling2D((2, 3), strides=2, padding="same", name="mp")(zp)  # 6x4
    ap = L.AveragePooling2D(3, strides=2, padding="same", name="ap")(img)  # 5x4
    relu = L.ReLU(name="relu")(img)
    mpu = L.MaxPooling2D(2, padding="same", name="mpu")(relu)  # 5x4, unsigned input with pads
    crop = L.Cropping2D(((1, 0), (0, 0)), name="crop")(mp)  # 5x4
    add = L.Add(name="add")([crop, ap])
    sub = L.Subtract(name="sub")([ap, mpu])
    mul = L.Multiply(name="mul")([add, sub])
    avg = L.Average(name="avg")([mul, mpu])
    mx = L.Maximum(name="max")([avg, crop])
    mn = L.Minimum(name="min")([mx, sub])
    cat_c = L.Concatenate(axis=-1, name="cat_c")([mn, add])  # 5x4x6
    cat_h = L.Concatenate(axis=1, name="cat_h")([mn, ap])  # 10x4x3
    cat_w = L.Concatenate(axis=2, name="cat_w")([cat_h, cat_h])  # 10x8x3
    up = L.UpSampling2D((2, 1), name="up")(mn)  # 10x4x3
    apv = L.AveragePooling2D((2, 1), name="apv")(up)  # 5x4x3
    bn2 = L.BatchNormalization(name="bn2")(apv)  # per channel, as after a convolution
    perm = L.Permute((2, 1, 3), name="permute")(bn2)  # 4x5x3
    gmp = L.GlobalMaxPooling2D(name="gmp")(cat_c)
    gap = L.GlobalAveragePooling2D(name="gap")(cat_w)
    scale = L.Reshape((1, 1, 3), name="rs_gap")(gap)
    bcast = L.Multiply(name="bcast")([perm, scale])  # (4,5,3) x (1,1,3): hls4ml broadcasts by i % 3
    flat = L.Flatten(name="flat")(bcast)
    d_img = L.Dense(7, name="d_img")(flat)

    zp1 = L.ZeroPadding1D((2, 1), name="zp1")(seq)  # 15x4
    mp1 = L.MaxPooling1D(3, strides=2, name="mp1")(zp1)  # 7x4
    ap1 = L.AveragePooling1D(2, padding="same", name="ap1")(seq)  # 6x4
    up1 = L.UpSampling1D(2, name="up1")(ap1)  # 12x4
    cr1 = L.Cropping1D((3, 2), name="cr1")(up1)  # 7x4
    s1 = L.Add(name="add1")([mp1, cr1])
    cat1 = L.Concatenate(axis=1, name="cat1")([s1, mp1])  # 14x4
    cat2 = L.Concatenate(axis=-1, name="cat2")([s1, cr1])  # 7x8
    gmp1 = L.GlobalMaxPooling1D(name="gmp1")(cat1)
    gap1 = L.GlobalAveragePooling1D(name="gap1")(cat2)
    d_vec = L.Dense(4, name="d_vec")(vec)
    cat0 = L.Concatenate(name="cat0")([gmp1, d_vec])  # 8
    bn = L.BatchNormalization(name="bn")(cat0)
    m1 = L.Multiply(name="m1")([bn, gap1])
    out = L.Dense(3, name="out")(L.Concatenate(name="cat_out")([m1, gmp]))
    model = tf.keras.Model([img, seq, vec], [d_img, out, gap])
    _randomize(model, rng)
    layers = {name: _typed(rng, POOLS, signed=name != "mpu") for name in
              ("mp", "ap", "mpu", "apv", "gmp", "gap", "mp1", "ap1", "gmp1", "gap1")}
    layers["relu"] = _typed(rng, signed=False)
    for name in ("add", "sub", "mul", "avg", "max", "min", "cat_c", "cat_h", "cat_w", "bcast", "add1", "cat1",
                 "cat2", "cat0", "m1", "cat_out"):
        layers[name] = _typed(rng)
    for name in ("d_img", "d_vec", "out"):
        layers[name] = _typed(rng, ("weight", "bias", "accum", "result"))
    layers["bn"] = _typed(rng, ("scale", "bias", "result"))
    layers["bn2"] = _typed(rng, ("scale", "bias", "result"))
    shapes = [(9, 7, 3), (12, 4), (6,)]
    return model, layers, shapes


def _stream_model(rng):
    """io_stream: what its templates accept (pool == stride, no pooling pads, equal-size merges, whole-ratio
    upsampling). Values used twice get Clone layers, a Flatten before a Reshape a Repack, Permute a Transpose;
    one output is also consumed by another layer."""
    import tensorflow as tf

    L = tf.keras.layers
    img, seq = L.Input((8, 7, 3), name="img"), L.Input((11, 4), name="seq")
    zp = L.ZeroPadding2D(((1, 1), (2, 1)), name="zp")(img)  # 10x10
    mp = L.MaxPooling2D(2, name="mp")(zp)  # 5x5
    ap = L.AveragePooling2D((2, 2), name="ap")(img)  # 4x3, the odd column dropped
    up = L.UpSampling2D((2, 3), name="up")(ap)  # 8x9
    mp2 = L.MaxPooling2D((3, 3), name="mp2")(L.ZeroPadding2D(((1, 0), (0, 0)), name="zp2")(up))  # 3x3
    crop = L.Cropping2D(((1, 1), (1, 1)), name="crop")(mp)  # 3x3
    add = L.Add(name="add")([crop, mp2])
    sub = L.Subtract(name="sub")([crop, mp2])
    mul = L.Multiply(name="mul")([add, sub])
    avg = L.Average(name="avg")([mul, crop])
    mx = L.Maximum(name="max")([avg, sub])
    mn = L.Minimum(name="min")([mx, add])
    cat_c = L.Concatenate(axis=-1, name="cat_c")([mn, add])  # 3x3x6
    cat_h = L.Concatenate(axis=1, name="cat_h")([mn, mx])  # 6x3x3
    cat_w = L.Concatenate(axis=2, name="cat_w")([mn, avg])  # 3x6x3
    gap = L.GlobalAveragePooling2D(name="gap")(cat_h)
    gmp = L.GlobalMaxPooling2D(name="gmp")(cat_w)
    perm = L.Permute((2, 1, 3), name="permute")(L.BatchNormalization(name="bn2")(cat_c))
    flat = L.Flatten(name="flat")(perm)
    rs = L.Reshape((3, 18), name="rs")(flat)  # words of 6 repacked into words of 18
    ap1r = L.AveragePooling1D(3, name="ap1r")(rs)  # 1x18
    d_img = L.Dense(6, name="d_img")(L.Flatten(name="flat2")(ap1r))

    mp1 = L.MaxPooling1D(2, name="mp1")(L.ZeroPadding1D((1, 0), name="zp1")(seq))  # 6x4
    ap1 = L.AveragePooling1D(3, name="ap1")(seq)  # 3x4
    up1 = L.UpSampling1D(2, name="up1")(ap1)  # 6x4
    s1 = L.Add(name="add1")([mp1, up1])
    cat1 = L.Concatenate(axis=-1, name="cat1")([s1, up1])  # 6x8
    gmp1 = L.GlobalMaxPooling1D(name="gmp1")(cat1)
    gap1 = L.GlobalAveragePooling1D(name="gap1")(L.Concatenate(axis=1, name="cat1h")([s1, mp1]))
    vec = L.Concatenate(name="cat0")([gmp1, gap1])  # 12
    seq_t = L.Permute((2, 1), name="permute2")(seq)  # 4x11: the 2-d stream transpose
    gmp_t = L.GlobalMaxPooling1D(name="gmp_t")(L.MaxPooling1D(2, name="mp_t")(seq_t))  # 11
    both = L.Concatenate(name="cat_v")([vec, L.Concatenate(name="cat_t")([gap, gmp_t])])
    out = L.Dense(4, name="out")(L.Concatenate(name="cat_out")([both, gmp]))
    model = tf.keras.Model([img, seq], [d_img, out, gmp])
    _randomize(model, rng)
    layers = {name: _typed(rng, POOLS) for name in ("mp", "ap", "mp2", "gap", "gmp", "ap1r", "mp1", "ap1", "gmp1",
                                                   "gap1", "mp_t", "gmp_t")}
    for name in ("add", "sub", "mul", "avg", "max", "min", "cat_c", "cat_h", "cat_w", "add1", "cat1", "cat1h",
                 "cat0", "cat_t", "cat_v", "cat_out"):
        layers[name] = _typed(rng)
    for name in ("d_img", "out"):
        layers[name] = _typed(rng, ("weight", "bias", "accum", "result"))
    layers["bn2"] = _typed(rng, ("scale", "bias", "result"))
    return model, layers, [(8, 7, 3), (11, 4)]


def _inputs(shapes, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 3, (n, *shape)) for shape in shapes]


def _classes(hls_model) -> set:
    return {layer.class_name for layer in hls_model.get_layers()}


def _run_parallel(seed: int, tmp_path):
    model, layers, shapes = _parallel_model(np.random.default_rng(seed))
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj", default_precision="ap_fixed<12,5,AP_RND,AP_SAT>")
    assert {"Pooling1D", "Pooling2D", "GlobalPooling1D", "GlobalPooling2D", "ZeroPadding1D", "ZeroPadding2D",
            "Cropping1D", "Cropping2D", "Resize", "Transpose", "Merge", "Concatenate", "Reshape",
            "BatchNormalization", "Dense"} <= _classes(hls_model)
    assert hls_model.graph["bn2"].get_attr("n_filt") == 3
    pads = [hls_model.graph[name].get_attr("pad_right") for name in ("mp", "ap", "mpu")]
    assert all(pads), pads  # 'same' pooling really pads
    traces = _assert_bit_exact(hls_model, _inputs(shapes, 1500, seed))
    assert {"mp", "ap", "mpu", "add", "bcast", "cat_w", "gap1", "out"} <= set(traces)


def _run_stream(seed: int, tmp_path):
    model, layers, shapes = _stream_model(np.random.default_rng(seed))
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj", io_type="io_stream",
                              default_precision="ap_fixed<12,5,AP_RND,AP_SAT>")
    assert {"Clone", "Repack", "Transpose", "Pooling1D", "Pooling2D", "GlobalPooling1D", "GlobalPooling2D",
            "ZeroPadding1D", "ZeroPadding2D", "Cropping2D", "Resize", "Merge", "Concatenate",
            "BatchNormalization"} <= _classes(hls_model)
    traces = _assert_bit_exact(hls_model, _inputs(shapes, 1500, seed))
    assert {"mp", "ap", "gap", "gmp", "permute", "permute2", "ap1r", "gmp_t", "out"} <= set(traces)


@needs_gpp
def test_pooling_merges_and_reshaping_are_bit_exact_io_parallel(tmp_path):
    _run_parallel(0, tmp_path)


@needs_gpp
def test_pooling_merges_and_reshaping_are_bit_exact_io_stream(tmp_path):
    _run_stream(0, tmp_path)


QUICK_CHAIN = ("tanh", "bn", "sig", "lk", "pr", "se", "relu")


def _stream_chain(rng, only: tuple | None = None):
    """Dense and every activation family (or those named in ``only``) in io_stream, random types; softmax of
    every implementation."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_relu, quantized_tanh

    L = tf.keras.layers
    x = inp = L.Input((10,), name="x")
    acts = [L.Activation("tanh", name="tanh"), L.BatchNormalization(name="bn"), L.Activation("sigmoid", name="sig"),
            L.LeakyReLU(0.3, name="lk"), L.ELU(0.8, name="elu"), L.PReLU(name="pr"),
            L.Activation("softplus", name="sp"), L.Activation("softsign", name="ss"), L.Activation("selu", name="se"),
            L.Activation("hard_sigmoid", name="hs"), QActivation(quantized_tanh(6), name="qt"),
            QActivation(quantized_relu(8, 3, negative_slope=0.25), name="ql"), L.ThresholdedReLU(0.3, name="th"),
            L.ReLU(name="relu")]
    acts = [act for act in acts if only is None or act.name in only]
    layers = {}
    for k, act in enumerate(acts):
        x = act(L.Dense(8, name=f"d{k}")(x))
        layers[f"d{k}"] = _typed(rng, ("weight", "bias", "accum", "result"))
        if act.name not in ("qt", "ql"):
            layers[act.name] = _typed(rng, ("result",), signed=act.name not in ("sig", "relu"))
    outs = []
    for k, impl in enumerate(("stable", "latency", "legacy", "argmax")):
        outs.append(L.Activation("softmax", name=f"sm{k}")(L.Dense(5, name=f"ds{k}")(x)))
        layers[f"sm{k}"] = {"Implementation": impl, "Precision": {"result": "ap_fixed<12,2,AP_RND,AP_SAT>"}}
        layers[f"ds{k}"] = {"Precision": {"weight": "ap_fixed<10,4>", "bias": "ap_fixed<10,4>", "accum": "ap_fixed<18,8>",
                                          "result": "ap_fixed<12,5,AP_RND,AP_SAT>"}}
    model = tf.keras.Model(inp, outs)
    _randomize(model, rng)
    return model, layers


@needs_gpp
def test_dense_and_activations_are_bit_exact_io_stream(tmp_path):
    model, layers = _stream_chain(np.random.default_rng(1), QUICK_CHAIN)
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj", io_type="io_stream")
    _assert_bit_exact(hls_model, _inputs([(10,)], 1500, 1))


@pytest.mark.slow
@needs_gpp
@pytest.mark.parametrize("seed", range(1, 4))
def test_random_pooling_merge_types_sweep_io_parallel(seed, tmp_path):
    _run_parallel(seed, tmp_path)


@pytest.mark.slow
@needs_gpp
@pytest.mark.parametrize("seed", range(1, 4))
def test_random_pooling_merge_types_sweep_io_stream(seed, tmp_path):
    _run_stream(seed, tmp_path)


@pytest.mark.slow
@needs_gpp
@pytest.mark.parametrize("seed", range(1, 4))
def test_random_activation_types_sweep_io_stream(seed, tmp_path):
    model, layers = _stream_chain(np.random.default_rng(seed))
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj", io_type="io_stream")
    _assert_bit_exact(hls_model, _inputs([(10,)], 1500, seed))


def test_run_takes_one_array_per_input_and_returns_one_per_output(tmp_path):
    """No g++: the input list is checked, outputs come back in get_output_variables() order."""
    import tensorflow as tf

    L = tf.keras.layers
    a, b = L.Input((4,), name="a"), L.Input((4,), name="b")
    s = L.Add(name="s")([a, b])
    model = tf.keras.Model([a, b], [L.Dense(2, name="d")(s), s])
    hls_model = _hls4ml_model(model, {}, tmp_path / "prj")
    X = [np.ones((3, 4)), np.full((3, 4), 0.5)]
    result = Emulator(hls_model).run(X)
    assert isinstance(result.outputs, list) and [o.shape for o in result.outputs] == [(3, 2), (3, 4)]
    np.testing.assert_array_equal(result.outputs[1], 1.5)
    with pytest.raises(Exception, match="2 input"):
        Emulator(hls_model).run(X[0])
    with pytest.raises(Exception, match="3 values per row; the model takes 4"):
        Emulator(hls_model).run([X[0], X[1][:, :3]])


def test_refusals_name_the_layer_and_the_reason(tmp_path):
    """No g++: what the emulator does not reproduce is listed with its reason, and emulate refuses the model.
    In io_stream, hls4ml's pooling asserts there is no padding, repack_stream loses words unless one word
    size divides the other, and merges assert equal words; in io_parallel all are fine."""
    import tensorflow as tf

    L = tf.keras.layers
    a = L.Input((6, 6, 3), name="a")
    pooled = L.MaxPooling2D(2, padding="same", name="mp_same")(L.ZeroPadding2D(((0, 1), (0, 1)), name="zp")(a))
    out = L.Reshape((6, 8), name="rs")(L.Flatten(name="flat")(pooled))  # io_stream: words of 3 into words of 8
    model = tf.keras.Model(a, out)
    stream = _hls4ml_model(model, {}, tmp_path / "stream", io_type="io_stream")
    bad = {entry.split(" ")[0]: entry for entry in unsupported_layers(stream)}
    assert set(bad) == {"mp_same", "repack_rs"}, bad
    assert "padding" in bad["mp_same"] and "words of 3 to words of 8" in bad["repack_rs"], bad
    with pytest.raises(Exception, match="mp_same"):
        Emulator(stream)
    assert unsupported_layers(_hls4ml_model(model, {}, tmp_path / "parallel")) == []
    # an io_stream Add of a flattened image (words of 3) and a Dense output (one word of 12): the template
    # asserts equal words, and hls4ml inserts no Repack
    a, b = L.Input((2, 2, 3), name="a"), L.Input((12,), name="b")
    mixed = tf.keras.Model([a, b], L.Add(name="add")([L.Flatten(name="f")(a), L.Dense(12, name="d")(b)]))
    assert unsupported_layers(_hls4ml_model(mixed, {}, tmp_path / "mixed", io_type="io_stream")) == \
        ["add (io_stream merge of streams with words of [3, 12] values)"]


def test_single_input_takes_rows_as_nested_lists_or_a_one_element_list(tmp_path):
    import tensorflow as tf

    L = tf.keras.layers
    a = L.Input((3,), name="a")
    hls_model = _hls4ml_model(tf.keras.Model(a, L.Dense(2, name="d")(a)), {}, tmp_path / "prj")
    rows = [[0.5, 1.0, -1.0], [0.25, 0.0, 2.0]]
    expected = emulate(hls_model, np.array(rows)).outputs
    assert expected.shape == (2, 2)
    np.testing.assert_array_equal(emulate(hls_model, rows).outputs, expected)
    np.testing.assert_array_equal(emulate(hls_model, [np.array(rows)]).outputs, expected)
