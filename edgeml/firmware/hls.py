"""hls4ml configuration and project build: edgeml's ``hls`` section -> an hls4ml ModelGraph.

``build`` returns ``(hls_model, warnings)``; nothing is written until ``write_project``
(or a C-sim compile) asks for it.
"""

from __future__ import annotations

import contextlib
import io
import os

from edgeml import config as cfgmod
from edgeml.errors import EdgemlError, InputError
from edgeml.firmware import hgq_proxy
from edgeml.firmware.passes import prepare_for_hls, unconvertible_layers

PROJECT_NAME = "myproject"
# edgeml's per-layer keys that hls4ml reads from its LayerName entry under the same name.
LAYER_ATTRIBUTES = ("ReuseFactor", "Strategy", "TableSize", "Implementation", "Skip")


@contextlib.contextmanager
def quiet():
    """Silence hls4ml's prints and g++'s output (Python and file-descriptor level): --json needs clean stdout."""
    buffer = io.StringIO()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            with contextlib.redirect_stdout(buffer):
                yield buffer
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _kind_precisions(precision) -> dict[str, str]:
    """Model-wide Precision (string or per-kind dict) -> a full {weight, bias, result, accum} dict."""
    if isinstance(precision, str):
        return {kind: precision for kind in cfgmod.PRECISION_KINDS}
    fallback = precision.get("result") or next(iter(precision.values()), "ap_fixed<16,6>")
    return {kind: precision.get(kind, fallback) for kind in cfgmod.PRECISION_KINDS}


def _keras_layer_of(entry_name: str, keras_names: set[str]) -> str:
    """hls4ml config entries like 'fc1_relu' or 'fc1_linear' belong to Keras layer 'fc1'."""
    if entry_name in keras_names:
        return entry_name
    base = entry_name.rsplit("_", 1)[0]
    return base if base in keras_names else entry_name


def _is_quantized(layer) -> bool:
    """QKeras layers: their precisions come from the quantizers and are kept."""
    return type(layer).__module__.startswith("qkeras")


def hls4ml_config(model, hls: dict) -> tuple[dict, list[str]]:
    """The hls4ml configuration (granularity 'name') for ``model`` under edgeml's ``hls`` section.

    Float layers get the configured precision for every kind; QKeras layers keep what
    hls4ml derived from their quantizers unless LayerName overrides them explicitly
    (which is reported as a warning).
    """
    import hls4ml

    warnings: list[str] = []
    defaults = _kind_precisions(hls["Precision"])
    with quiet():
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=hls["Backend"],
                                                   default_precision=defaults["result"])
    if hgq_proxy.is_proxy_model(model):
        # an HGQ proxy carries each conv's parallel_factor, which hls4ml applies only where the config sets none
        for entry in cfg["LayerName"].values():
            entry.pop("ParallelizationFactor", None)
    cfg["Model"]["ReuseFactor"] = hls["ReuseFactor"]
    cfg["Model"]["Strategy"] = hls["Strategy"]
    keras_layers = {layer.name: layer for layer in model.layers}
    quantized = {name for name, layer in keras_layers.items() if _is_quantized(layer)}
    for name, entry in cfg["LayerName"].items():
        if "ReuseFactor" in entry:
            entry["ReuseFactor"] = hls["ReuseFactor"]
        precision = entry.get("Precision")
        if _keras_layer_of(name, set(keras_layers)) in quantized:
            continue
        if isinstance(precision, dict) and "exp_table" in precision:
            precision["result"] = defaults["result"]  # softmax: its tables and sum keep hls4ml's own types
        elif isinstance(precision, dict):
            for kind in cfgmod.PRECISION_KINDS:
                if kind in precision:
                    precision[kind] = defaults[kind]
        elif precision is not None:
            entry["Precision"] = defaults["result"]
    for name, override in hls.get("LayerName", {}).items():
        if name not in cfg["LayerName"]:
            raise InputError(f"hls.LayerName.{name}: the model has no layer '{name}' "
                             f"(layers: {', '.join(cfg['LayerName'])})")
        entry = cfg["LayerName"][name]
        if override.get("Precision") is not None:
            _apply_precision_override(name, entry, override["Precision"],
                                      _keras_layer_of(name, set(keras_layers)) in quantized, warnings)
        for key in LAYER_ATTRIBUTES:
            if override.get(key) is not None:
                entry[key] = override[key]
    _align_linear_activations(cfg)
    return cfg, warnings


def _align_linear_activations(cfg: dict) -> None:
    """hls4ml adds '<layer>_linear' after each Dense and drops it only when its result type matches the
    layer's; give it the layer's type so that a per-layer precision does not leave a re-quantizing node behind."""
    layers = cfg["LayerName"]
    for name, entry in layers.items():
        base = layers.get(name.removesuffix("_linear")) if name.endswith("_linear") else None
        if base is None or not isinstance(entry.get("Precision"), dict):
            continue
        result = base["Precision"].get("result") if isinstance(base.get("Precision"), dict) else base.get("Precision")
        if result is not None:
            entry["Precision"]["result"] = result


def _apply_precision_override(name: str, entry: dict, value, quantized: bool, warnings: list[str]) -> None:
    current = entry.get("Precision")
    kinds = [k for k in cfgmod.PRECISION_KINDS if isinstance(current, dict) and k in current] or ["result"]
    wanted = {k: value for k in kinds} if isinstance(value, str) else dict(value)
    if not isinstance(current, dict):
        current = entry["Precision"] = {"result": current} if current else {}
    for kind, text in wanted.items():
        if quantized and current.get(kind) not in (None, "auto") and current[kind] != text:
            warnings.append(f"layer {name}: hls.LayerName precision {kind}={text} overrides "
                            f"{current[kind]} derived from its QKeras quantizer")
        current[kind] = text


def build(model, hls: dict, output_dir) -> tuple[object, list[str]]:
    """Convert a Keras/QKeras model into an hls4ml ModelGraph for ``output_dir``: ``(hls_model, warnings)``.

    ``hls`` is the validated ``hls`` config section; the warnings name settings hls4ml
    changed (a ReuseFactor) or QKeras types an override replaced. Nothing is written yet.
    """
    import hls4ml

    model = prepare_for_hls(model)
    bad = unconvertible_layers(model)
    if bad:
        raise InputError(f"hls4ml cannot convert layer(s) {', '.join(bad)}; replace them with supported layers")
    refusal = hgq_proxy.stream_refusal(model, hls["IOType"])
    if refusal:
        raise InputError(refusal)
    cfg, warnings = hls4ml_config(model, hls)
    try:
        with quiet():
            hls_model = hls4ml.converters.convert_from_keras_model(
                model, hls_config=cfg, output_dir=str(output_dir), project_name=PROJECT_NAME,
                backend=hls["Backend"], part=hls["Part"], clock_period=hls["ClockPeriod"], io_type=hls["IOType"])
    except (InputError, EdgemlError):
        raise
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgemlError(f"hls4ml could not convert the model: {text}") from None
    apply_table_types(hls_model, cfg)
    return hls_model, warnings + reuse_factor_warnings(hls_model, cfg)


def write_project(hls_model) -> None:
    """Write the hls4ml project files (no compile): what a user takes to synthesis."""
    with quiet():
        hls_model.write()


def apply_table_types(hls_model, cfg: dict) -> None:
    """Softmax table types from LayerName.<softmax>.Precision.

    hls4ml 1.3 reads exp_table/inv_table/inv_inp from the config but never applies them to a
    Keras softmax (it keeps its 18-bit defaults, and inp_norm is always derived from the input
    type), so they are set on the layer here, before anything is written.
    """
    from hls4ml.model.optimizer import get_optimizer

    backend = hls_model.config.backend
    for layer in hls_model.get_layers():
        precision = cfg["LayerName"].get(layer.name, {}).get("Precision")
        if layer.class_name != "Softmax" or not isinstance(precision, dict):
            continue
        _set_table_types(layer, precision, backend)
        # The layer's C++ config struct was rendered during conversion: render it again with the new types.
        get_optimizer(f"{backend.name.lower()}:softmax_config_template").transform(hls_model, layer)


def _set_table_types(layer, precision: dict, backend) -> None:
    from copy import copy

    for kind in cfgmod.TABLE_KINDS:
        if kind not in precision:
            continue
        if layer.get_attr(f"{kind}_t") is None:  # inp_norm_t is otherwise derived from the input type
            named = copy(layer.get_attr("inv_inp_t"))
            named.name = f"{layer.name}_{kind}_t"
            layer.set_attr(f"{kind}_t", named)
        named = layer.get_attr(f"{kind}_t")
        wanted = backend.convert_precision_string(precision[kind])
        new = copy(named.precision)  # keeps the backend's C++ definition mixin
        for field in ("width", "integer", "signed", "rounding_mode", "saturation_mode"):
            setattr(new, field, getattr(wanted, field))
        named.precision = new


def reuse_factor_warnings(hls_model, cfg: dict) -> list[str]:
    """Layers whose requested ReuseFactor hls4ml replaced.

    hls4ml 1.3 (FPGABackend.set_closest_reuse_factor, Resource strategy) accepts RF only
    if n_in*n_out % RF == 0 and, for RF < n_in, ceil(n_in*n_out/RF) % n_out == 0, or for
    RF >= n_in, RF % n_in == 0; otherwise it takes the closest valid value (the smaller on a tie).
    """
    warnings = []
    backend = hls_model.config.backend
    for layer in hls_model.get_layers():
        actual = layer.get_attr("reuse_factor")
        entry = cfg["LayerName"].get(layer.name, {})
        requested = entry.get("ReuseFactor", cfg["Model"]["ReuseFactor"])
        if actual is None or requested == actual or "Dense" not in layer.class_name and "Conv" not in layer.class_name:
            continue
        n_in, n_out = backend.get_layer_mult_size(layer)
        valid = backend.get_valid_reuse_factors(n_in, n_out)
        shown = ",".join(map(str, valid[:12])) + (",..." if len(valid) > 12 else "")
        warnings.append(f"layer {layer.name}: ReuseFactor {requested} is invalid for n_in={n_in}, n_out={n_out} "
                        f"with the {layer.get_attr('strategy', 'resource')} strategy; hls4ml uses {actual}, "
                        f"the closest valid value (valid: {shown})")
    return warnings
