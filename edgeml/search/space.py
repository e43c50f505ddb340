"""The search space: Optuna distributions from ``search.space``, and one trial's parameters turned into the
settings the existing stages take (a ``compression`` recipe section and an ``hls`` section).

A trial's ``method`` is qkeras (QKeras bits per layer, tfmot sparsity, ``Strategy``) or hgq (HGQ learns
the bits from ``hgq_init_bits`` under a beta ramp ``hgq_beta_start`` -> ``hgq_beta_end``; ``hgq_Strategy``
Latency or distributed_arithmetic, the latter at ReuseFactor 1). Width, depth, input precision,
distillation and learning rate are shared. The space is flat (Optuna's fixed distributions): ``width_3``
exists even when a trial has two hidden layers, the hgq parameters even in a qkeras trial, and are then
unused. That keeps every trial's parameters comparable for the sampler and the importances.
"""

from __future__ import annotations

from edgeml import config as cfgmod
from edgeml.errors import InputError

# The two reference recipes are the first trials, so the search starts from the known designs: the hls4ml
# tutorial tagger quantized as in its part 4 (configs/tutorial_qkeras.yaml), and edgeml_compact
# (configs/edgeml_compact.yaml; its per-layer sparsities 85/90/85/75% become the space's one sparsity).
TUTORIAL_POINT = {"hidden_layers": 3, "widths": [64, 32, 32], "weight_bits": [6, 6, 6], "weight_bits_out": 6,
                  "activation_bits": 6, "input_bits": 16, "sparsity": 0.75, "distill": False, "ReuseFactor": 1,
                  "Strategy": "Latency", "learning_rate": 0.001}
COMPACT_POINT = {"hidden_layers": 3, "widths": [64, 32, 32], "weight_bits": [6, 4, 4], "weight_bits_out": 5,
                 "activation_bits": 6, "input_bits": 16, "sparsity": 0.85, "distill": False, "ReuseFactor": 1,
                 "Strategy": "Latency", "learning_rate": 0.002}
# The HGQ recipe (configs/hgq.yaml) on the tutorial network, under distributed arithmetic: the third start.
HGQ_POINT = {**TUTORIAL_POINT, "method": "hgq", "learning_rate": 0.003, "hgq_beta_start": 5e-7, "hgq_beta_end": 1e-4,
             "hgq_init_bits": 2, "hgq_Strategy": "distributed_arithmetic"}
QKERAS, HGQ = "qkeras", "hgq"
INPUT_LAYER = "fc1_input"  # hls4ml's name of a Sequential tagger's input (its first Dense is fc1)
DA = cfgmod.DA


def search_settings(cfg: dict) -> dict:
    """The config's validated ``search`` section, or its defaults when the config has none."""
    return cfg.get("search") or cfgmod.validate({"search": {}})["search"]


def check_space(space: dict) -> None:
    """Refuse a space no trial can be built from (the schema already refused empty lists and bad ranges)."""
    integer = space["input_integer"]
    if space["input_bits"][1] < integer:
        raise InputError(f"search.space.input_bits {space['input_bits']} cannot hold input_integer = {integer} "
                         f"integer bits; raise input_bits to at least {integer} or lower input_integer")
    if space["activation_bits"][1] < 1 or space["weight_bits"][1] < 2:
        raise InputError("search.space: weight_bits must reach 2 bits and activation_bits 1 bit")
    if HGQ in space["method"] and space["hgq_beta_end"][1] < space["hgq_beta_start"][0]:
        raise InputError(f"search.space.hgq_beta_end {space['hgq_beta_end']} lies below hgq_beta_start "
                         f"{space['hgq_beta_start']}: beta ramps up; raise hgq_beta_end")


def max_layers(space: dict) -> int:
    return int(space["hidden_layers"][1])


def distributions(space: dict) -> dict:
    """name -> Optuna distribution of every parameter a trial takes."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    check_space(space)
    lo, hi = space["hidden_layers"]
    dists = {"hidden_layers": IntDistribution(lo, hi)}
    for i in range(1, hi + 1):
        dists[f"width_{i}"] = CategoricalDistribution(sorted(set(space["widths"])))
        dists[f"weight_bits_{i}"] = IntDistribution(*space["weight_bits"])
        dists[f"activation_bits_{i}"] = IntDistribution(*space["activation_bits"])
    dists["weight_bits_out"] = IntDistribution(*space["weight_bits"])
    dists["input_bits"] = IntDistribution(max(space["input_bits"][0], space["input_integer"]),
                                          space["input_bits"][1])
    dists["sparsity"] = FloatDistribution(*space["sparsity"])
    dists["distill"] = CategoricalDistribution(sorted(set(space["distill"])))
    dists["ReuseFactor"] = CategoricalDistribution(sorted(set(space["ReuseFactor"])))
    dists["Strategy"] = CategoricalDistribution(sorted(set(space["Strategy"])))
    dists["learning_rate"] = FloatDistribution(*space["learning_rate"], log=True)
    dists["method"] = CategoricalDistribution(sorted(set(space["method"])))
    if HGQ in space["method"]:
        dists["hgq_beta_start"] = FloatDistribution(*space["hgq_beta_start"], log=True)
        dists["hgq_beta_end"] = FloatDistribution(*space["hgq_beta_end"], log=True)
        dists["hgq_init_bits"] = IntDistribution(*space["hgq_init_bits"])
        dists["hgq_Strategy"] = CategoricalDistribution(sorted(set(space["hgq_Strategy"])))
    return dists


def starting_points(space: dict) -> list[dict]:
    """The reference recipes as trials (tutorial first), each value moved to the nearest one the space
    allows; a point the space maps onto an earlier one is dropped."""
    points = []
    recipes = [TUTORIAL_POINT, COMPACT_POINT] if QKERAS in space["method"] else []
    recipes += [HGQ_POINT] if HGQ in space["method"] else []
    for point in (starting_point(space, t) for t in recipes):
        if point not in points:
            points.append(point)
    return points


def starting_point(space: dict, t: dict = TUTORIAL_POINT) -> dict:
    """The recipe ``t`` (default: the tutorial tagger), each value moved to the nearest one the space allows."""
    dists = distributions(space)
    wanted = {"hidden_layers": t["hidden_layers"], "weight_bits_out": t["weight_bits_out"],
              "input_bits": t["input_bits"], "sparsity": t["sparsity"], "distill": t["distill"],
              "ReuseFactor": t["ReuseFactor"], "Strategy": t["Strategy"], "learning_rate": t["learning_rate"],
              "method": t.get("method", QKERAS)}
    wanted.update({k: HGQ_POINT[k] for k in ("hgq_beta_start", "hgq_beta_end", "hgq_init_bits", "hgq_Strategy")})
    for i in range(1, max_layers(space) + 1):
        wanted[f"width_{i}"] = t["widths"][min(i, len(t["widths"])) - 1]
        wanted[f"weight_bits_{i}"] = t["weight_bits"][min(i, len(t["weight_bits"])) - 1]
        wanted[f"activation_bits_{i}"] = t["activation_bits"]
    return {name: _nearest(wanted[name], dist) for name, dist in dists.items()}


def _nearest(value, dist):
    choices = getattr(dist, "choices", None)
    if choices is not None:
        if value in choices:
            return value
        numeric = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        return min(numeric, key=lambda c: abs(c - value)) if numeric and isinstance(value, (int, float)) \
            else choices[0]
    return type(dist.low)(min(max(value, dist.low), dist.high))


def input_precision(params: dict, space: dict) -> str:
    return f"ap_fixed<{int(params['input_bits'])},{space['input_integer']}>"


def hidden_widths(params: dict) -> list[int]:
    return [int(params[f"width_{i}"]) for i in range(1, int(params["hidden_layers"]) + 1)]


def recipe_section(params: dict, epochs: int) -> dict:
    """The trial as a ``compression`` section: QKeras student from scratch, pruned, optionally distilled."""
    n = int(params["hidden_layers"])
    per_layer = {f"fc{i}": {"bits": int(params[f"weight_bits_{i}"]),
                            "activation_bits": int(params[f"activation_bits_{i}"])} for i in range(1, n + 1)}
    per_layer["output"] = {"bits": int(params["weight_bits_out"])}
    return cfgmod.validate({"compression": {
        "name": "trial", "start": "scratch", "epochs": epochs, "learning_rate": float(params["learning_rate"]),
        "student": {"hidden": hidden_widths(params)},
        "prune": {"sparsity": float(params["sparsity"]), "schedule": "polynomial", "begin_epoch": 0},
        "quantize": {"enabled": True, "integer": 0, "activation_integer": 0, "per_layer": per_layer},
        "distill": {"enabled": bool(params["distill"])},
    }})["compression"]


def hgq_recipe_section(params: dict, epochs: int) -> dict:
    """An hgq trial as a ``compression`` section (kind hgq): HGQ student from scratch, optionally distilled."""
    bits = float(params["hgq_init_bits"])
    start = float(params["hgq_beta_start"])
    return cfgmod.validate({"compression": {
        "name": "trial", "kind": "hgq", "start": "scratch", "epochs": epochs,
        "learning_rate": float(params["learning_rate"]), "student": {"hidden": hidden_widths(params)},
        "hgq": {"input_bits": bits, "weight_bits": bits, "activation_bits": bits,
                "beta": {"start": start, "end": max(start, float(params["hgq_beta_end"])), "interpolation": "log"}},
        "distill": {"enabled": bool(params["distill"])},
    }})["compression"]


def strategy_and_reuse(params: dict) -> tuple[str, int]:
    """The trial's hls4ml Strategy and ReuseFactor (distributed arithmetic only at ReuseFactor 1)."""
    if params.get("method", QKERAS) == HGQ:
        strategy = params["hgq_Strategy"]
        return strategy, 1 if strategy == DA else int(params["ReuseFactor"])
    return params["Strategy"], int(params["ReuseFactor"])


def hls_section(params: dict, cfg: dict, search: dict) -> dict:
    """The config's ``hls`` section on the budget's part and clock, with the trial's reuse, strategy and input."""
    budget = search["budget"]
    layers = dict(cfg["hls"].get("LayerName") or {})
    layers[INPUT_LAYER] = {"Precision": input_precision(params, search["space"])}
    strategy, reuse = strategy_and_reuse(params)
    hls = {**cfg["hls"], "Part": budget["Part"], "ClockPeriod": budget["ClockPeriod"], "ReuseFactor": reuse,
           "Strategy": strategy, "LayerName": layers}
    if strategy == DA:
        hls["IOType"] = "io_parallel"
        layers.update({name: {k: v for k, v in entry.items() if k != "ReuseFactor"} for name, entry in layers.items()})
    return cfgmod.validate({"hls": hls})["hls"]
