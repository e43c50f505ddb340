"""Shared by the emulator tests: hls4ml models built straight from Keras with per-layer config, and the
exact comparison of an emulation with a C-simulation."""

import shutil

import numpy as np
import pytest

from edgeml.fixed import ROUNDING_MODES

needs_gpp = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


def _assert_identical(y, traces, result):
    assert set(traces) <= set(result.traces)
    for name, values in traces.items():
        np.testing.assert_array_equal(result.traces[name], values, err_msg=f"layer {name}")
    np.testing.assert_array_equal(result.outputs, y, err_msg="outputs")


def _hls4ml_model(model, layers: dict, out_dir, tables: dict | None = None, io_type: str = "io_parallel",
                  default_precision: str = "ap_fixed<16,6>"):
    """hls4ml straight from Keras with per-layer config; ``tables`` sets softmax table types as edgeml does."""
    from copy import copy

    import hls4ml
    from hls4ml.model.optimizer import get_optimizer

    from edgeml.simulate import quiet

    with quiet():
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis",
                                                   default_precision=default_precision)
        for name, entry in layers.items():
            precision = entry.pop("Precision", {})
            cfg["LayerName"][name].update(entry)
            if precision:
                current = cfg["LayerName"][name].get("Precision")
                current = current if isinstance(current, dict) else {}
                cfg["LayerName"][name]["Precision"] = {**current, **precision}
        hls_model = hls4ml.converters.convert_from_keras_model(model, hls_config=cfg, output_dir=str(out_dir),
                                                               backend="Vitis", io_type=io_type)
    backend = hls_model.config.backend
    for layer_name, kinds in (tables or {}).items():
        layer = hls_model.graph[layer_name]
        for kind, text in kinds.items():
            named = layer.get_attr(f"{kind}_t")
            wanted, new = backend.convert_precision_string(text), copy(named.precision)
            for field in ("width", "integer", "signed", "rounding_mode", "saturation_mode"):
                setattr(new, field, getattr(wanted, field))
            named.precision = new
        get_optimizer("vitis:softmax_config_template").transform(hls_model, layer)
    return hls_model


def _keras(layers, n_in: int, seed: int):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([tf.keras.layers.Input((n_in,)), *layers])
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # spread the weights so that rounding and overflow really happen
        layer.set_weights([rng.normal(0, 1.5 if w.ndim > 1 else 1.0, w.shape) for w in layer.get_weights()])
    return model


def _activation_chain(activations, seed: int):
    """Dense -> activation pairs; ``activations``: (Keras layer, the Dense result type, the layer's hls config)."""
    import tensorflow as tf

    L = tf.keras.layers
    chain, layers = [], {}
    for k, (activation, dense_result, config) in enumerate(activations):
        chain += [L.Dense(10, name=f"d{k}"), activation]
        layers[f"d{k}"] = {"Precision": {"weight": "ap_fixed<8,3>", "bias": "ap_fixed<8,3>", "accum": "ap_fixed<36,14>",
                                         "result": dense_result}}
        layers[f"d{k}_linear"] = {"Precision": {"result": dense_result}}  # the Dense's own linear activation
        layers[activation.name] = config
    return _keras(chain + [L.Dense(5, name="out")], 8, seed=seed), layers


def _random_type(rng, signed=True, min_width=4):
    width = int(rng.integers(min_width, 16))
    integer = int(rng.integers(-1, 7))
    rounding, saturation = rng.choice(ROUNDING_MODES), rng.choice(["SAT", "WRAP"])
    return f"ap_{'' if signed else 'u'}fixed<{width},{integer},AP_{rounding},AP_{saturation}>"
