"""The emulator's convolutions against hls4ml's C-simulation, layer trace by layer trace.

Each test compiles one hls4ml project holding several conv layers (each g++ compile costs 5-20 s):
random weights, types with every rounding and overflow mode and accumulators narrow enough to overflow,
strides, paddings, kernel shapes, Latency and Resource, io_parallel and io_stream.
"""

import numpy as np
import pytest

from emulator_helpers import _assert_identical, _random_type, needs_gpp


def test_windows_are_hls4ml_im2col_and_read_back_from_fill_buffer():
    """The windows of random 2D and 1D geometries equal hls4ml's own im2col matrix, and parsing the fill_buffer
    C++ it generates from that matrix (several partitions) gives them back."""
    import hls4ml

    from edgeml.firmware.emulator.convolution import _generated_windows, _Geometry

    backend = hls4ml.backends.get_backend("Vitis")
    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w, c = (int(v) for v in rng.integers(1, 9, 3))
        fh, fw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        pt, pb, pl, pr = (int(v) for v in rng.integers(0, 3, 4))
        out_h, out_w = (h + pt + pb - fh) // sh + 1, (w + pl + pr - fw) // sw + 1
        if out_h < 1 or out_w < 1:
            continue
        geometry = _Geometry(h, w, c, fh, fw, sh, sw, pt, pl, out_h, out_w)
        im2col = backend._compute_conv2d_im2col((h, w, c), (fh, fw), (sh, sw), (pt, pb, pl, pr), (1, 1))
        zero = h * w * c
        expected = np.where(im2col == 0, zero, im2col - 1).astype(np.int64)
        np.testing.assert_array_equal(geometry.windows(), expected)
        partitions = max(d for d in range(1, out_h * out_w + 1) if out_h * out_w % d == 0 and d <= 4)
        source = backend.generate_conv2d_line_buffer_fn(0, partitions, h, w, c, (fh, fw), (sh, sw), (pt, pb, pl, pr))
        np.testing.assert_array_equal(_generated_windows(source, out_h * out_w, fh * fw * c, zero), expected)
    source = backend.generate_conv1d_line_buffer_fn(0, 5, 9, 3, kernel=4, stride=2, pad=(1, 2))
    geometry = _Geometry(1, 9, 3, 1, 4, 1, 2, 0, 1, 1, 5)
    np.testing.assert_array_equal(_generated_windows(source, 5, 12, 27), geometry.windows())


def test_image_models_run_in_small_chunks():
    """Narrow models keep MIN_CHUNK events per chunk; a 28x28x16 layer gets chunks of <= 2 MB arrays."""
    from edgeml.firmware.emulator.core import MIN_CHUNK, WIDE_CHUNK_BYTES, _split

    assert {c.stop - c.start for c in _split(4 * MIN_CHUNK, 2, width=64)} == {MIN_CHUNK}
    wide = _split(10_000, 2, width=26 * 26 * 16)
    sizes = {c.stop - c.start for c in wide}
    assert len(wide) % 2 == 0 and max(sizes) * 26 * 26 * 16 * 8 <= 2 * WIDE_CHUNK_BYTES and min(sizes) >= 1
    assert wide[0].start == 0 and wide[-1].stop == 10_000


def test_traces_keep_the_narrowest_integers_and_decode_exactly():
    """Each type's extreme integers fit the dtype chosen for it and decode to the doubles of Fixed.to_float, in
    whole and by blocks of rows; a large trace array (mapped memory) behaves like np.empty's."""
    from edgeml.firmware.emulator.core import Traces, _int_dtype, _trace_array
    from edgeml.fixed import Fixed

    cases = {Fixed(True, 8, 3): np.int8, Fixed(False, 8, 0): np.uint8, Fixed(False, 6, 0): np.uint8,
             Fixed(True, 16, 6): np.int16, Fixed(True, 17, 20): np.int32, Fixed(True, 27, 12): np.int32,
             Fixed(False, 32, 2): np.uint32, Fixed(False, 33, 1): np.int64, Fixed(True, 40, 8): np.int64}
    for t, dtype in cases.items():
        lo, hi = t.int_range
        ints = np.array([[lo, hi], [lo + 1, hi - 1], [0, 1]], dtype=np.int64)
        stored = _trace_array(ints.shape, _int_dtype(t))
        stored[...] = ints
        traces = Traces({"x": stored}, {"x": t.frac})
        assert stored.dtype == dtype and list(traces) == ["x"], t
        np.testing.assert_array_equal(traces["x"], t.to_float(ints), err_msg=str(t))
        np.testing.assert_array_equal(traces.block("x", slice(1, 3)), t.to_float(ints[1:]), err_msg=str(t))
        assert traces["x"].dtype == np.float64 and traces.ints("x")[1] == t.frac
    big = _trace_array((1000, 10_000), np.int16)
    big[...] = 3
    assert big.dtype == np.int16 and big.flags["C_CONTIGUOUS"] and big.flags["WRITEABLE"]
    assert big.sum(dtype=np.int64) == 3e7


def _keras(input_shape, layers, seed: int, spread: float = 1.5):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([tf.keras.layers.Input(input_shape), *layers])
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # spread the weights so that rounding and overflow really happen
        layer.set_weights([rng.normal(0, spread if w.ndim > 1 else 1.0, w.shape) for w in layer.get_weights()])
    return model


def _hls4ml_model(model, layers: dict, out_dir, io_type: str = "io_parallel", model_config: dict | None = None,
                  backend: str = "Vitis"):
    import hls4ml

    from edgeml.simulate import quiet

    with quiet():
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=backend,
                                                   default_precision="ap_fixed<16,6>")
        cfg["Model"].update(model_config or {})
        for name, entry in layers.items():
            entry = dict(entry)
            precision = entry.pop("Precision", {})
            cfg["LayerName"].setdefault(name, {}).update(entry)
            if precision:
                current = cfg["LayerName"][name].get("Precision")
                current = current if isinstance(current, dict) else {}
                cfg["LayerName"][name]["Precision"] = {**current, **precision}
            if "result" in precision and f"{name}_linear" in cfg["LayerName"]:  # hls4ml then drops the linear
                cfg["LayerName"][f"{name}_linear"]["Precision"] = {"result": precision["result"]}
        return hls4ml.converters.convert_from_keras_model(model, hls_config=cfg, output_dir=str(out_dir),
                                                          backend=backend, io_type=io_type)


def _check(hls_model, X, expect: set):
    """The emulator against the traced C-simulation on ``X``: identical in every layer; ``expect`` are traced."""
    from edgeml.firmware.emulator import emulate, unsupported_layers
    from edgeml.simulate import compile_model, run

    assert unsupported_layers(hls_model) == []
    compile_model(hls_model)
    y, traces = run(hls_model, X)
    result = emulate(hls_model, X)
    _assert_identical(y, traces, result)
    assert expect <= set(traces), (expect - set(traces))
    return traces


def _wrapped(model, name: str, X, trace) -> bool:
    """Whether the traced layer is far (more than 2) from Keras' float output somewhere: an overflow."""
    import tensorflow as tf

    inner = tf.keras.Model(model.inputs, model.get_layer(name).output)
    expected = inner.predict(X.reshape(len(X), *model.input_shape[1:]), verbose=0).reshape(len(X), -1)
    return bool((np.abs(trace - expected) > 2).any())


CONV_TYPES = {"weight": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>", "bias": "ap_fixed<8,2>"}


@needs_gpp
def test_conv2d_parallel_paddings_strides_and_strategies(tmp_path):
    """io_parallel Conv2D: 'valid' 3x3, 'same' 3x2 with stride (2,1) (padding inside the im2col), a 1x1
    (hls4ml's PointwiseConv2D) with a saturating accumulator that overflows, Resource with RF 4 on a 2x2 conv."""
    import tensorflow as tf

    L = tf.keras.layers
    model = _keras((9, 8, 2), [
        L.Conv2D(4, 3, name="c1"),
        L.Conv2D(3, (3, 2), strides=(2, 1), padding="same", name="c2"),
        L.Conv2D(5, 1, name="c3"),
        L.Conv2D(3, 2, padding="same", name="c4")], seed=1)
    layers = {
        "c1": {"Precision": {**CONV_TYPES, "accum": "ap_fixed<14,6,AP_RND,AP_WRAP>",
                             "result": "ap_fixed<10,4,AP_RND_ZERO,AP_SAT>"}},
        "c2": {"Precision": {**CONV_TYPES, "accum": "ap_fixed<18,7>", "result": "ap_fixed<9,4,AP_RND,AP_WRAP>"}},
        "c3": {"ParallelizationFactor": 3, "Precision": {**CONV_TYPES, "accum": "ap_fixed<9,3,AP_TRN,AP_SAT>",
                             "result": "ap_fixed<10,4,AP_RND_INF,AP_SAT>"}},
        "c4": {"Strategy": "Resource", "ReuseFactor": 4,
               "Precision": {"weight": "ap_fixed<6,1,AP_TRN_ZERO,AP_WRAP>", "bias": "ap_fixed<8,2>",
                             "accum": "ap_fixed<10,4,AP_RND_MIN_INF,AP_SAT>", "result": "ap_fixed<12,5>"}},
    }
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj")
    kinds = {layer.name: layer.class_name for layer in hls_model.get_layers()}
    assert kinds["c3"] == "PointwiseConv2D" and hls_model.graph["c4"].get_attr("reuse_factor") == 4
    X = np.random.default_rng(0).normal(0, 2, (400, 9 * 8 * 2))
    traces = _check(hls_model, X, {"c1", "c2", "c3", "c4"})
    assert (np.abs(traces["c3"]) == 4 - 2 ** -6).mean() > 0.05  # the 9-bit accumulator saturates


@needs_gpp
def test_conv1d_parallel_and_pointwise_forms(tmp_path):
    """io_parallel Conv1D: 'valid' k=3 stride 2 with Resource RF 2, 'same' k=4 (odd padding), a 1x1 with
    stride 2 and ParallelizationFactor = out_width (BatchedDenseForConv1D), a 1x1 over three partitions
    (Conv1DLatency over a fill_buffer), a wrapping accumulator that overflows."""
    import tensorflow as tf

    L = tf.keras.layers
    model = _keras((13, 3), [
        L.Conv1D(4, 3, strides=2, name="c1"),
        L.Conv1D(6, 4, padding="same", name="c2"),
        L.Conv1D(5, 1, strides=2, name="c3"),
        L.Conv1D(4, 1, name="c4")], seed=2)
    layers = {
        "c1": {"Strategy": "Resource", "ReuseFactor": 2,
               "Precision": {**CONV_TYPES, "accum": "ap_fixed<12,5,AP_RND_CONV,AP_SAT>", "result": "ap_fixed<10,4>"}},
        "c2": {"Precision": {**CONV_TYPES, "accum": "ap_fixed<10,3,AP_TRN,AP_WRAP>",
                             "result": "ap_fixed<9,3,AP_RND,AP_SAT>"}},
        "c3": {"ParallelizationFactor": 3,
               "Precision": {"weight": "ap_fixed<7,2,AP_RND,AP_SAT>", "bias": "ap_fixed<6,1>",
                             "accum": "ap_fixed<11,4,AP_RND_ZERO,AP_SAT>",
                             "result": "ap_fixed<10,4,AP_TRN_ZERO,AP_SAT>"}},
        "c4": {"Precision": {**CONV_TYPES, "accum": "ap_fixed<16,6>", "result": "ap_ufixed<8,3,AP_RND,AP_SAT>"}},
    }
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj")
    assert [hls_model.graph[name].class_name for name in ("c3", "c4")] == ["PointwiseConv1D"] * 2
    assert [hls_model.graph[name].get_attr("n_partitions") for name in ("c3", "c4")] == [1, 3]
    X = np.random.default_rng(1).normal(0, 2, (500, 13 * 3))
    traces = _check(hls_model, X, {"c1", "c2", "c3", "c4"})
    assert _wrapped(model, "c2", X, traces["c2"])  # the 3-integer-bit accumulator


@needs_gpp
def test_conv2d_stream_line_buffer(tmp_path):
    """io_stream Conv2D (line buffer, Dense kernels per window): 3x3, 3x2 with stride (2,1) over a width
    that leaves a column unused, 2x2 stride 2 Resource with RF > n_in (dense_resource_rf_gt_nin_rem0), a
    1x1 stride 2 (PointwiseConv2D's own stream loop) Resource RF 2 with a saturating accumulator."""
    import tensorflow as tf

    L = tf.keras.layers
    model = _keras((11, 10, 2), [
        L.Conv2D(4, 3, name="c1"),
        L.Conv2D(3, (3, 2), strides=(2, 1), name="c2"),
        L.Conv2D(4, 2, strides=2, name="c3"),
        L.Conv2D(3, 1, strides=2, name="c4")], seed=3)
    layers = {
        "c1": {"Precision": {**CONV_TYPES, "accum": "ap_fixed<13,5,AP_RND,AP_WRAP>",
                             "result": "ap_fixed<10,4,AP_RND_ZERO,AP_SAT>"}},
        "c2": {"Precision": {**CONV_TYPES, "accum": "ap_fixed<18,7>", "result": "ap_fixed<9,4,AP_RND,AP_WRAP>"}},
        "c3": {"Strategy": "Resource", "ReuseFactor": 24,
               "Precision": {**CONV_TYPES, "accum": "ap_fixed<11,4,AP_TRN,AP_SAT>", "result": "ap_fixed<10,4>"}},
        "c4": {"Strategy": "Resource", "ReuseFactor": 2,
               "Precision": {**CONV_TYPES, "accum": "ap_fixed<9,3,AP_RND_INF,AP_SAT>",
                             "result": "ap_fixed<10,4,AP_RND_CONV,AP_SAT>"}},
    }
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj", io_type="io_stream")
    assert [hls_model.graph[name].get_attr("reuse_factor") for name in ("c3", "c4")] == [24, 2]
    X = np.random.default_rng(2).normal(0, 2, (300, 11 * 10 * 2))
    _check(hls_model, X, {"c1", "c2", "c3", "c4"})


@needs_gpp
@pytest.mark.parametrize("io_type", [pytest.param("io_parallel", marks=pytest.mark.slow), "io_stream"])
def test_depthwise_and_separable_convs(io_type, tmp_path):
    """SeparableConv2D and SeparableConv1D (hls4ml splits them into DepthwiseConv + PointwiseConv), standalone
    DepthwiseConv2D/1D; narrow saturating accumulators. io_stream: Resource with the reuse factors of each
    depthwise_product_resource_* form (RF <= n_chan, RF > n_chan with and without RF % n_chan == 0, RF > n_in)."""
    import tensorflow as tf

    L = tf.keras.layers
    stream = io_type == "io_stream"
    model2 = _keras((9, 8, 3), [L.SeparableConv2D(4, 3, name="s1"), L.DepthwiseConv2D((2, 3), name="d1")], seed=4)
    model1 = _keras((14, 4), [L.SeparableConv1D(5, 3, strides=2, name="s1"), L.DepthwiseConv1D(3, name="d1")],
                    seed=5)
    narrow = {"accum": "ap_fixed<10,4,AP_RND,AP_SAT>", "result": "ap_fixed<10,4,AP_RND_CONV,AP_SAT>"}
    for k, (model, reuse) in enumerate([(model2, {"s1": 9, "d1": 6}), (model1, {"s1": 2, "d1": 75})]):
        layers = {name: {"Precision": {"depthwise": "ap_fixed<8,2,AP_RND,AP_SAT>", "pointwise": "ap_fixed<8,2>",
                                       "weight": "ap_fixed<8,2,AP_RND,AP_SAT>", "bias": "ap_fixed<8,2>", **narrow}}
                  for name in ("s1", "d1")}
        if stream:
            for name, rf in reuse.items():
                layers[name].update(Strategy="Resource", ReuseFactor=rf)
        hls_model = _hls4ml_model(model, layers, tmp_path / f"prj{k}", io_type=io_type)
        kinds = {layer.name: layer.class_name for layer in hls_model.get_layers()}
        assert kinds["s1_depthwise"].startswith("DepthwiseConv") and kinds["s1_pointwise"].startswith("PointwiseConv")
        if stream:
            assert {name: hls_model.graph[name].get_attr("reuse_factor") for name in ("s1_depthwise", "d1")} == \
                {"s1_depthwise": reuse["s1"], "d1": reuse["d1"]}
        X = np.random.default_rng(k).normal(0, 2, (300, int(np.prod(model.input_shape[1:]))))
        _check(hls_model, X, {"s1_depthwise", "s1_pointwise", "d1"})


@needs_gpp
def test_qkeras_convs_and_batchnorm(tmp_path):
    """QConv2D (alpha=1, and alpha='auto' with hls4ml's ApplyAlpha per filter), a BatchNormalization kept after
    a QConv2D and one folded into a float Conv2D, QConv2DBatchnorm, QDepthwiseConv2D, QActivation
    quantized_relu / quantized_bits, in io_parallel."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QConv2DBatchnorm, QDepthwiseConv2D, quantized_bits, quantized_relu

    L = tf.keras.layers
    q6 = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
    model = _keras((10, 10, 2), [
        QConv2D(6, 3, name="q1", **q6),
        L.BatchNormalization(name="bnq"),
        QActivation(quantized_relu(6, 2), name="qr1"),
        QConv2D(4, 3, strides=2, padding="same", kernel_quantizer=quantized_bits(4, 0, alpha="auto"),
                bias_quantizer=quantized_bits(8, 3), name="q2"),
        QActivation(quantized_bits(8, 3, alpha=1), name="qb2"),
        L.Conv2D(5, 1, name="c3"),
        L.BatchNormalization(name="bnf"),
        QConv2DBatchnorm(4, 2, name="qbn", **q6),
        QDepthwiseConv2D(2, depthwise_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(6, 1),
                         name="qd")], seed=6, spread=0.7)
    for name in ("bnq", "bnf"):  # a positive variance
        bn = model.get_layer(name)
        bn.set_weights([np.abs(w) + 0.5 if k == 3 else w for k, w in enumerate(bn.get_weights())])
    model.predict(np.zeros((1, 10, 10, 2)), verbose=0)  # QKeras sets alpha='auto' scales on a call
    wide = {"Precision": {"accum": "ap_fixed<24,10>", "result": "ap_fixed<14,6,AP_RND,AP_SAT>"}}
    hls_model = _hls4ml_model(model, {"qbn": wide, "qd": wide}, tmp_path / "prj2")  # not the 65 bits inferred
    kinds = {layer.name: layer.class_name for layer in hls_model.get_layers()}
    assert kinds["qbn"] == "Conv2DBatchnorm" and "q2_alpha" in kinds and "bnf" not in kinds, kinds
    X = np.random.default_rng(6).normal(0, 1, (300, 200))
    _check(hls_model, X, {"q1", "bnq", "qr1", "q2", "q2_alpha", "c3", "qbn", "qd"})


@pytest.mark.slow
@needs_gpp
def test_qkeras_conv1d_and_separable(tmp_path):
    """QConv1D with 'same' padding and stride 2, quantized_relu, QSeparableConv1D (depthwise + pointwise)."""
    from qkeras import QActivation, QConv1D, QSeparableConv1D, quantized_bits, quantized_relu

    q6 = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
    model = _keras((16, 3), [
        QConv1D(6, 4, strides=2, padding="same", name="q1", **q6),
        QActivation(quantized_relu(8, 3), name="qr1"),
        QSeparableConv1D(4, 3, depthwise_quantizer=quantized_bits(6, 1, alpha=1),
                         pointwise_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(8, 3),
                         name="qs")], seed=7, spread=0.7)
    hls_model = _hls4ml_model(model, {}, tmp_path / "prj1")
    X = np.random.default_rng(7).normal(0, 1, (300, 48))
    _check(hls_model, X, {"q1", "qr1", "qs_depthwise", "qs_pointwise"})


@pytest.mark.slow
@needs_gpp
def test_stream_padding_and_encoded_windows(tmp_path):
    """io_stream: 'same' convs (hls4ml inserts a ZeroPadding layer and convolves 'valid'), the encoded
    implementation (``pixels`` instructions and ``scale_index``) next to the line buffer, strides; Conv2D
    and Conv1D, relu between. Vivado backend: Vitis replaces Encoded by the line buffer."""
    import tensorflow as tf

    L = tf.keras.layers
    model = _keras((12, 11, 2), [
        L.Conv2D(4, 3, padding="same", name="c1"),
        L.ReLU(name="r1"),
        L.Conv2D(3, 3, strides=2, name="c2"),
        L.Conv2D(4, 2, strides=2, padding="same", name="c3")], seed=8)
    encoded = {"ConvImplementation": "Encoded"}
    layers = {"c1": {**encoded, "Precision": {**CONV_TYPES, "accum": "ap_fixed<12,5,AP_RND,AP_SAT>",
                                              "result": "ap_fixed<10,4,AP_RND,AP_SAT>"}},
              "r1": {"Precision": {"result": "ap_ufixed<8,3,AP_RND,AP_SAT>"}},
              "c2": {**encoded, "Precision": {**CONV_TYPES, "accum": "ap_fixed<18,8>", "result": "ap_fixed<12,5>"}},
              "c3": {"Precision": {**CONV_TYPES, "accum": "ap_fixed<18,8>", "result": "ap_fixed<12,5>"}}}
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj2", io_type="io_stream", backend="Vivado")
    kinds = {layer.name: layer.class_name for layer in hls_model.get_layers()}
    assert {"zp2d_c1", "zp2d_c3"} <= set(kinds), kinds
    assert hls_model.graph["c2"].get_attr("implementation") == "encoded"
    X = np.random.default_rng(8).normal(0, 2, (300, 12 * 11 * 2))
    _check(hls_model, X, {"c1", "r1", "c2", "c3"})

    model = _keras((17, 3), [
        L.Conv1D(4, 3, padding="same", name="c1"),
        L.Conv1D(5, 4, strides=3, name="c2"),
        L.Conv1D(3, 2, strides=2, padding="same", name="c3")], seed=9)
    layers = {"c1": {**encoded, "Precision": {**CONV_TYPES, "accum": "ap_fixed<11,4,AP_TRN,AP_SAT>",
                                              "result": "ap_fixed<11,4>"}},
              "c2": {**encoded, "Precision": {**CONV_TYPES, "accum": "ap_fixed<18,8>", "result": "ap_fixed<12,5>"}},
              "c3": {"Precision": {**CONV_TYPES, "accum": "ap_fixed<18,8>", "result": "ap_fixed<12,5>"}}}
    hls_model = _hls4ml_model(model, layers, tmp_path / "prj1", io_type="io_stream", backend="Vivado")
    assert hls_model.graph["c2"].get_attr("implementation") == "encoded"
    X = np.random.default_rng(9).normal(0, 2, (300, 17 * 3))
    _check(hls_model, X, {"c1", "c2", "c3"})


def test_conv_forms_hls4ml_cannot_run_are_refused(tmp_path):
    """What the C++ asserts against (the C-simulation would abort) or computes with another loop is refused with
    its reason: io_parallel Resource conv with RF > kernel inputs, io_parallel Resource DepthwiseConv,
    depth_multiplier 2, io_stream one-row kernels with a vertical stride (conv_2d_buffer_cl's 1D path)."""
    import tensorflow as tf

    from edgeml.firmware.emulator import unsupported_layers

    L = tf.keras.layers
    model = _keras((8, 8, 2), [L.Conv2D(3, 2, name="big_rf"), L.DepthwiseConv2D(2, name="dw"),
                               L.DepthwiseConv2D(2, depth_multiplier=2, name="dm2")], seed=10)
    resource = {"Strategy": "Resource"}
    hls_model = _hls4ml_model(model, {"big_rf": {**resource, "ReuseFactor": 24}, "dw": resource}, tmp_path / "par")
    assert hls_model.graph["big_rf"].get_attr("reuse_factor") == 24  # valid for hls4ml: a multiple of n_in = 8
    reasons = dict(entry.split(" ", 1) for entry in unsupported_layers(hls_model))
    assert set(reasons) == {"big_rf", "dw", "dm2"}, reasons
    assert "reuse factor 24 > kernel inputs 8" in reasons["big_rf"] and "Resource DepthwiseConv" in reasons["dw"]
    assert "depth_multiplier" in reasons["dm2"]

    model = _keras((6, 7, 2), [L.Conv2D(3, (1, 3), strides=(2, 1), name="row")], seed=11)
    hls_model = _hls4ml_model(model, {}, tmp_path / "stream", io_type="io_stream")
    assert [entry.split(" ")[0] for entry in unsupported_layers(hls_model)] == ["row"]


def _random_conv_chain(rng, two_d: bool, stream: bool, encoded: bool = False):
    """Three random convs (kernel, stride, padding, filters, a depthwise now and then), their hls4ml layer
    config (random types in every rounding and overflow mode, Latency or Resource with a valid reuse factor;
    ``encoded``: the encoded io_stream implementation where hls4ml allows it, square kernels and strides)."""
    import hls4ml
    import tensorflow as tf

    L = tf.keras.layers
    backend = hls4ml.backends.get_backend("Vitis")
    dims = [int(v) for v in rng.integers(6, 12, 2 if two_d else 1)]
    channels = int(rng.integers(1, 4))
    shape = (*dims, channels)
    chain, layers = [], {}
    for k in range(3):
        kernel = [int(rng.integers(1, min(4, d) + 1)) for d in dims]
        stride = [int(rng.integers(1, 3)) for _ in dims]
        padding = str(rng.choice(["valid", "same"]))
        depthwise = k == 1 and rng.random() < 0.4
        if stream and two_d and kernel[0] == 1 and (kernel[1] > 1 or depthwise):
            stride[0] = 1  # conv_2d_buffer_cl's one-row path does not skip rows (refused; a 1x1 conv's does)
        name = f"c{k}"
        conv = (L.DepthwiseConv2D if two_d else L.DepthwiseConv1D) if depthwise else (L.Conv2D if two_d else L.Conv1D)
        args = dict(kernel_size=kernel, strides=stride, padding=padding, name=name)
        filters = channels if depthwise else int(rng.integers(2, 6))
        chain.append(conv(**args) if depthwise else conv(filters, **args))
        entry = {"Precision": {"weight": _random_type(rng), "bias": _random_type(rng),
                               "accum": _random_type(rng, min_width=8) if rng.random() < 0.3
                               else f"ap_fixed<{int(rng.integers(9, 22))},{int(rng.integers(3, 10))},"
                                    f"AP_{rng.choice(['TRN', 'RND', 'RND_CONV'])},AP_{rng.choice(['SAT', 'WRAP'])}>",
                               "result": _random_type(rng, min_width=6)}}
        if depthwise:
            entry["Precision"]["depthwise"] = entry["Precision"]["weight"]
        if encoded and len(set(kernel)) == 1 and len(set(stride)) == 1 and rng.random() < 0.7:
            entry["ConvImplementation"] = "Encoded"
        n_in = int(np.prod(kernel)) * channels
        if rng.random() < 0.5 and (stream or not depthwise):
            valid = [rf for rf in backend.get_valid_reuse_factors(n_in, filters) if stream or rf <= n_in]
            entry.update(Strategy="Resource", ReuseFactor=int(rng.choice(valid)))
        layers[name] = entry
        dims = [-(-d // s) if padding == "same" else (d - kk) // s + 1 for d, kk, s in zip(dims, kernel, stride)]
        channels = filters
        if min(dims) < 1:
            break
    return shape, chain[:k + 1] if min(dims) >= 1 else chain[:k], layers


@pytest.mark.slow
@needs_gpp
@pytest.mark.parametrize("seed", range(8))
def test_random_conv_sweep(seed, tmp_path):
    """Random conv chains: 1D and 2D, io_parallel and io_stream, Vitis and Vivado backends (Vivado io_stream
    with encoded windows), random geometry, types and strategies."""
    rng = np.random.default_rng(500 + seed)
    two_d, stream, vivado = bool(seed % 2), bool(seed // 2 % 2), bool(seed // 4 % 2)
    shape, chain, layers = _random_conv_chain(rng, two_d, stream, encoded=stream and vivado)
    model = _keras(shape, chain, seed=600 + seed)
    hls_model = _hls4ml_model(model, {k: v for k, v in layers.items() if k in {c.name for c in chain}},
                              tmp_path / "prj", io_type="io_stream" if stream else "io_parallel",
                              backend="Vivado" if vivado else "Vitis")
    for layer in chain:
        entry = layers[layer.name]
        if "ReuseFactor" in entry:
            assert hls_model.graph[layer.name].get_attr("reuse_factor") == entry["ReuseFactor"], layer.name
    X = np.random.default_rng(seed).normal(0, 3, (300, int(np.prod(shape))))
    _check(hls_model, X, {layer.name for layer in chain})


@needs_gpp
@pytest.mark.parametrize("io_type", [pytest.param("io_parallel", marks=pytest.mark.slow), "io_stream"])
def test_trigger_shaped_models(io_type, tmp_path):
    """The issue's model kinds whole: a conv autoencoder (same-padded convs, max pooling, upsampling) and a
    DeepSets network (pointwise Conv1D per particle, global average pooling, Dense), with relu between."""
    import tensorflow as tf

    L = tf.keras.layers
    typed = {"Precision": {**CONV_TYPES, "accum": "ap_fixed<20,8>", "result": "ap_fixed<14,6,AP_RND,AP_SAT>"}}
    autoencoder = _keras((12, 12, 1), [
        L.Conv2D(4, 3, padding="same", name="e1"), L.ReLU(name="r1"), L.MaxPooling2D(2, name="p1"),
        L.Conv2D(2, 3, padding="same", name="e2"), L.UpSampling2D(2, name="u1"),
        L.Conv2D(1, 3, padding="same", name="d1")], seed=12, spread=0.7)
    deepsets = _keras((8, 3), [
        L.Conv1D(6, 1, name="phi1"), L.ReLU(name="r1"), L.Conv1D(4, 1, name="phi2"),
        L.GlobalAveragePooling1D(name="pool"), L.Dense(3, name="rho")], seed=13, spread=0.7)
    for k, model in enumerate((autoencoder, deepsets)):
        convs = [layer.name for layer in model.layers if "conv" in type(layer).__name__.lower()]
        hls_model = _hls4ml_model(model, {name: typed for name in convs}, tmp_path / f"prj{k}", io_type=io_type)
        X = np.random.default_rng(k).uniform(0, 1, (300, int(np.prod(model.input_shape[1:]))))
        _check(hls_model, X, set(convs))
