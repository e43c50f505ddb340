"""The search space: Optuna distributions from ``search.space``, and one trial's parameters turned into the
settings the existing stages take (a ``compression`` recipe section and an ``hls`` section).

The space is flat (Optuna's fixed distributions): ``width_3`` exists even when a trial has two hidden
layers and is then unused. That keeps every trial's parameters comparable for the sampler and the
importances.
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
    return dists


def starting_points(space: dict) -> list[dict]:
    """The reference recipes as trials (tutorial first), each value moved to the nearest one the space
    allows; a point the space maps onto an earlier one is dropped."""
    points = []
    for point in (starting_point(space, TUTORIAL_POINT), starting_point(space, COMPACT_POINT)):
        if point not in points:
            points.append(point)
    return points


def starting_point(space: dict, t: dict = TUTORIAL_POINT) -> dict:
    """The recipe ``t`` (default: the tutorial tagger), each value moved to the nearest one the space allows."""
    dists = distributions(space)
    wanted = {"hidden_layers": t["hidden_layers"], "weight_bits_out": t["weight_bits_out"],
              "input_bits": t["input_bits"], "sparsity": t["sparsity"], "distill": t["distill"],
              "ReuseFactor": t["ReuseFactor"], "Strategy": t["Strategy"], "learning_rate": t["learning_rate"]}
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


def hls_section(params: dict, cfg: dict, search: dict) -> dict:
    """The config's ``hls`` section on the budget's part and clock, with the trial's reuse, strategy and input."""
    budget = search["budget"]
    layers = dict(cfg["hls"].get("LayerName") or {})
    layers["fc1_input"] = {"Precision": input_precision(params, search["space"])}
    hls = {**cfg["hls"], "Part": budget["Part"], "ClockPeriod": budget["ClockPeriod"],
           "ReuseFactor": int(params["ReuseFactor"]), "Strategy": params["Strategy"], "LayerName": layers}
    return cfgmod.validate({"hls": hls})["hls"]
