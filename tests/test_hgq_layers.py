"""HGQ models of every layer kind physicists use, built and trained here (real HGQ 0.2.6, hls4ml 1.3, g++):
each converts with edgeml and its firmware (emulator, C-sim) equals HGQ's proxy in every layer, on in-range
inputs and on inputs four times larger (wrapping accumulators and quantizers)."""

import numpy as np
import pytest

from edgeml.errors import InputError

BETA = 3e-5  # enough resource pressure that a few epochs leave heterogeneous bit widths


def _image(L, h):
    """8x8x1 image: HConv2DBatchNorm (4 pixels in parallel), PMaxPooling2D, HConv2D with 'same' padding,
    PAveragePooling2D, PFlatten, HDenseBatchNorm."""
    i = L.Input((8, 8, 1), name="img")
    x = h.HQuantize(beta=BETA, name="inq")(i)
    x = h.HConv2DBatchNorm(3, 3, activation="relu", beta=BETA, parallel_factor=4, name="conv1")(x)  # 6x6
    x = h.PMaxPooling2D(2, name="max1")(x)  # 3x3
    x = h.HConv2D(4, 2, padding="same", activation="relu", beta=BETA, name="conv2")(x)  # 3x3
    x = h.PAveragePooling2D(2, name="avg2")(x)  # 1x1
    x = h.PFlatten(name="flat")(x)
    x = h.HDenseBatchNorm(6, activation="relu", beta=BETA, name="fc1")(x)
    return i, h.HDense(3, beta=BETA, name="out")(x)


def _sequence(L, h):
    """32 values as a 16x2 sequence: PReshape, HConv1DBatchNorm, PMaxPooling1D, HConv1D, relu HActivation,
    PAveragePooling1D."""
    i = L.Input((32,), name="seq")
    x = h.HQuantize(beta=BETA, name="inq")(i)
    x = h.PReshape((16, 2), name="rs")(x)
    x = h.HConv1DBatchNorm(4, 3, activation="relu", beta=BETA, name="conv1")(x)  # 14
    x = h.PMaxPooling1D(2, name="max1")(x)  # 7
    x = h.HConv1D(4, 3, beta=BETA, name="conv2")(x)  # 5
    x = h.HActivation("relu", beta=BETA, name="relu2")(x)
    x = h.PAveragePooling1D(2, name="avg2")(x)  # 2
    x = h.PFlatten(name="flat")(x)
    return i, h.HDense(3, beta=BETA, name="out")(x)


def _branches(L, h):
    """Two inputs; a residual HAdd, a PConcatenate of two branches, sigmoid and tanh HActivations (UnaryLUTs in
    the proxy)."""
    i, aux = L.Input((16,), name="x"), L.Input((4,), name="aux")
    q = h.HQuantize(beta=BETA, name="inq")(i)
    a = h.HDense(8, activation="relu", beta=BETA, name="fc_a")(q)
    b = h.HDense(8, beta=BETA, name="fc_b")(a)
    b = h.HActivation("relu", beta=BETA, name="relu_b")(b)
    s = h.HAdd(beta=BETA, name="add")([a, b])
    s = h.HActivation("sigmoid", beta=BETA, name="sig")(s)
    c = h.HDense(4, beta=BETA, name="fc_c")(h.HQuantize(beta=BETA, name="aux_q")(aux))
    c = h.HActivation("tanh", beta=BETA, name="tanh_c")(c)
    x = h.PConcatenate(name="cat")([s, c])
    return [i, aux], h.HDense(3, beta=BETA, name="out")(x)


KINDS = {"image": (_image, (8, 8, 1)), "sequence": (_sequence, (32,)), "branches": (_branches, [(16,), (4,)])}


def _inputs(shape, n=600, seed=0):
    """(X, y): three classes, each shifting the inputs along a fixed pattern, so that a few epochs learn them.
    A list of shapes: a list of arrays, one per input."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    if isinstance(shape, list):
        return [_pattern(rng, y, s) for s in shape], y
    return _pattern(rng, y, shape), y


def _pattern(rng, y, shape):
    n = len(y)
    pattern = np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    X = rng.normal(size=(n, *shape)).astype(np.float32) + 0.7 * y.reshape((n,) + (1,) * len(shape)) * pattern
    return X.astype(np.float32)


class _Built:
    def __init__(self, model, proxy, X):
        self.model, self.proxy, self.X = model, proxy, X


_CACHE = {}


def built(kind: str, layerwise: bool = False) -> _Built:
    """The HGQ model of ``kind`` trained 3 epochs (cached per test session), calibrated with trace_minmax and
    exported with to_proxy_model (sigmoid/tanh as UnaryLUTs). ``layerwise``: one activation bit width per
    layer (HGQ paq_conf skip_dims 'all'), what io_stream takes."""
    if (kind, layerwise) in _CACHE:
        return _CACHE[kind, layerwise]
    import tensorflow as tf
    import HGQ
    import HGQ.layers
    from HGQ.utils import get_default_paq_conf, set_default_paq_conf

    class Layers:  # the HGQ layer classes under one name
        pass

    h = Layers()
    for name in ("HQuantize", "HDense", "HConv1D", "HConv2D"):
        setattr(h, name, getattr(HGQ, name))
    for name in ("HActivation", "HAdd", "HConv1DBatchNorm", "HConv2DBatchNorm", "HDenseBatchNorm", "PAveragePooling1D",
                 "PAveragePooling2D", "PConcatenate", "PFlatten", "PMaxPooling1D", "PMaxPooling2D", "PReshape"):
        setattr(h, name, getattr(HGQ.layers, name))
    build, shape = KINDS[kind]
    tf.keras.utils.set_random_seed(0)
    default = get_default_paq_conf()
    if layerwise:
        set_default_paq_conf({**default, "skip_dims": "all"})
    try:
        model = tf.keras.Model(*build(tf.keras.layers, h))
    finally:
        set_default_paq_conf(default)
    X, y = _inputs(shape)
    model.compile(tf.keras.optimizers.Adam(0.01), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, y, epochs=3, batch_size=64, verbose=0)
    HGQ.trace_minmax(model, X, verbose=False)
    proxy = HGQ.to_proxy_model(model, unary_lut_max_table_size=1024)
    _CACHE[kind, layerwise] = _Built(model, proxy, X)
    return _CACHE[kind, layerwise]


def _convert(model, X, tmp_path, io_type="io_parallel", strategy="Latency", engine="emulate", name="m"):
    """``edgeml.convert.convert`` of ``model`` saved as a file, compared on X and on 4 X (an array per input)."""
    from edgeml.convert import convert
    from edgeml.modelio import save_model

    path = save_model(model, tmp_path / f"{name}.h5")
    arrays = X if isinstance(X, list) else [X]
    data = tmp_path / f"{name}_X.npz"
    np.savez(data, **{key: np.concatenate([a, 4 * a]) for key, a in zip(model.input_names, arrays)})
    return convert(path, config={"hls": {"IOType": io_type, "Strategy": strategy}}, output_dir=tmp_path / f"{name}_prj",
                   data=data, n=2 * len(arrays[0]), engine=engine)


def _assert_bit_exact(report, engines=("emulate",)):
    """Every firmware engine equals the proxy on every event, in the output and every layer but the input."""
    layers = {layer["name"] for layer in report["layers"] if layer["class"] != "Input"}
    for engine in engines:
        agreement = report[f"proxy_vs_{engine}"]
        assert agreement["n"] == 1200
        assert set(agreement["layers"]) == layers, f"{engine}: layers not compared"
        assert agreement["layers"] == {name: 1.0 for name in layers}, engine
        assert agreement["identical_fraction"] == 1.0
    from edgeml.convert import summary_lines

    shown = summary_lines(report)  # what `edgeml convert` prints
    for engine in engines:
        assert any(line.startswith(f"HGQ proxy vs {engine}: 100.0000% of 1200") for line in shown)
    if len(engines) == 2:
        assert report["emulate_vs_csim"]["identical_fraction"] == 1.0
    assert report["engine_note"] is None  # the emulator covered every layer


def _classes(report) -> set[str]:
    return {layer["class"] for layer in report["layers"]}


# ----------------------------------------------------------------------------- emulator vs proxy (default run)

@pytest.mark.parametrize("kind, classes", [
    ("image", {"Conv2D", "Pooling2D", "Dense", "FixedPointQuantizer"}),  # hls4ml's class for max and average
    ("sequence", {"Conv1D", "Pooling1D", "Dense", "FixedPointQuantizer"}),
    ("branches", {"Merge", "Concatenate", "UnaryLUT", "Dense", "FixedPointQuantizer"}),
])
@pytest.mark.parametrize("strategy", ["Latency", "distributed_arithmetic"])
def test_heterogeneous_hgq_models_emulate_like_their_proxy_in_every_layer(kind, classes, strategy, tmp_path):
    b = built(kind)
    report = _convert(b.proxy, b.X, tmp_path, strategy=strategy)
    assert classes <= _classes(report)
    _assert_bit_exact(report)
    if kind == "image":  # HGQ's parallel_factor reaches the firmware: 36 pixels, 4 at a time
        assert "static const unsigned n_partitions = 9;" in (tmp_path / "m_prj/firmware/parameters.h").read_text()


@pytest.mark.slow  # a training each (~15-35 s); the C-sim tests below check the same models
@pytest.mark.parametrize("kind", ["image", "sequence", "branches"])
def test_layerwise_hgq_models_emulate_like_their_proxy_in_io_stream(kind, tmp_path):
    b = built(kind, layerwise=True)
    report = _convert(b.proxy, b.X, tmp_path, io_type="io_stream")
    _assert_bit_exact(report)


def test_heterogeneous_quantizers_in_io_stream_are_refused_in_one_line(tmp_path):
    b = built("image")
    with pytest.raises(InputError) as e:
        _convert(b.proxy, b.X, tmp_path, io_type="io_stream")
    text = str(e.value)
    assert "heterogeneous HGQ quantizers only with IOType io_parallel" in text and "inq" in text
    assert "skip_dims 'all'" in text and "\n" not in text


@pytest.mark.slow  # loading and tracing a full HGQ model: ~45 s on a busy machine
def test_a_full_hgq_model_of_two_inputs_is_calibrated_on_the_given_data(tmp_path):
    from edgeml.convert import convert
    from edgeml.modelio import save_model

    b = built("branches")
    path = save_model(b.model, tmp_path / "full.h5")  # the traced ranges are not saved with it
    with pytest.raises(InputError, match="full HGQ model.*pass --data with its training inputs"):
        convert(path, output_dir=tmp_path / "nodata", data="synthetic", engine="emulate")
    np.savez(tmp_path / "train.npz", **dict(zip(b.model.input_names, b.X)))
    report = convert(path, output_dir=tmp_path / "prj", data=tmp_path / "train.npz", engine="emulate")
    assert any("calibrated (trace_minmax) on the 600 events" in w and "in-sample" in w for w in report["warnings"])
    assert "UnaryLUT" in _classes(report)  # edgeml's export makes sigmoid and tanh bit-exact tables
    assert report["proxy_vs_emulate"]["identical_fraction"] == 1.0
    assert set(report["proxy_vs_emulate"]["layers"].values()) == {1.0}


def test_a_proxy_with_table_activations_is_converted_with_a_warning_naming_them(tmp_path):
    """hls4ml computes a proxy's plain sigmoid/tanh Activation with its own table: the firmware is not the
    proxy there, and the report says so instead of claiming bit-exactness."""
    from HGQ import to_proxy_model

    b = built("branches")
    proxy = to_proxy_model(b.model)  # HGQ's default: no UnaryLUT
    assert "UnaryLUT" not in {type(layer).__name__ for layer in proxy.layers}
    report = _convert(proxy, b.X, tmp_path)
    note = [w for w in report["warnings"] if w.startswith("HGQ proxy: activation(s)")]
    assert len(note) == 1 and "sig (sigmoid)" in note[0] and "tanh_c (tanh)" in note[0]
    assert "unary_lut_max_table_size=1024" in note[0]
    layers = report["proxy_vs_emulate"]["layers"]
    assert layers["fc_a"] == layers["add"] == 1.0  # exact up to the tables


# ----------------------------------------------------------------------------- three engines (g++ C-simulation)

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image", "sequence", "branches"])
def test_emulator_csim_and_proxy_agree_on_heterogeneous_hgq_models(kind, tmp_path):
    b = built(kind)
    _assert_bit_exact(_convert(b.proxy, b.X, tmp_path, engine="both"), ("emulate", "csim"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image", "sequence", "branches"])
def test_distributed_arithmetic_agrees_in_three_engines(kind, tmp_path):
    b = built(kind)
    report = _convert(b.proxy, b.X, tmp_path, strategy="distributed_arithmetic", engine="both")
    _assert_bit_exact(report, ("emulate", "csim"))
    cpp = (tmp_path / "m_prj" / "firmware" / "parameters.h").read_text()
    assert "static const unsigned strategy = nnet::distributed_arithmetic;" in cpp or kind == "branches"  # convs
    assert "dense_da_" in (tmp_path / "m_prj" / "firmware" / "myproject.cpp").read_text()  # adder graphs ran


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image", "sequence", "branches"])
def test_emulator_csim_and_proxy_agree_on_layerwise_hgq_models_in_io_stream(kind, tmp_path):
    b = built(kind, layerwise=True)
    _assert_bit_exact(_convert(b.proxy, b.X, tmp_path, io_type="io_stream", engine="both"), ("emulate", "csim"))


def test_a_softmax_output_is_named_as_the_one_layer_the_proxy_cannot_match():
    """A softmax reads all its inputs at once: no UnaryLUT export makes it exact, so the note says where the
    comparison stops instead of advising one."""
    import HGQ
    import tensorflow as tf
    from HGQ.layers import HActivation

    from edgeml.firmware.hgq_proxy import inexact_notes

    tf.keras.utils.set_random_seed(0)
    i = tf.keras.Input((8,))
    x = HGQ.HDense(3, beta=BETA, name="fc")(HGQ.HQuantize(beta=BETA, name="inq")(i))
    model = tf.keras.Model(i, HActivation("softmax", beta=BETA, name="prob")(x))
    HGQ.trace_minmax(model, np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32), verbose=False)
    notes = inexact_notes(HGQ.to_proxy_model(model, unary_lut_max_table_size=1024))
    assert len(notes) == 1 and "prob (softmax) is hls4ml's table softmax" in notes[0]
    assert "unary_lut_max_table_size" not in notes[0] and "\n" not in notes[0]
