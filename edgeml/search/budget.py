"""The trigger budget: which estimated resources a trial may use, and which limit bites hardest."""

from __future__ import annotations

import math

from edgeml.errors import InputError

# (name in messages, budget key, estimate total key, is a share of the part)
CONSTRAINTS = (("LUT", "max_lut_pct", "lut", True), ("DSP", "max_dsp_pct", "dsp", True),
               ("FF", "max_ff_pct", "ff", True), ("BRAM", "max_bram_pct", "bram_18k", True),
               ("latency", "max_latency_ns", "latency_ns", False), ("II", "max_ii", "ii", False))
UNITS = {"latency": " ns", "II": " clocks"}


def capacity(part: str) -> dict:
    """Resources of ``part``; refuses a part the estimator does not know (percentages would be meaningless)."""
    from edgeml.estimate import devices

    device = devices.lookup(part)
    if not device["known"]:
        raise InputError(f"search.budget.Part {part!r} is not in the estimator's device table "
                         f"({', '.join(devices.DEVICES)}); choose the one nearest yours in family and size, or add yours "
                         "to edgeml/estimate/devices.py DEVICES")
    return {k: device[k] for k in devices.RESOURCES}


def limits(budget: dict) -> dict[str, float]:
    """Constraint name -> absolute limit (resources in units, latency in ns, II in clocks); unset limits left out."""
    cap = capacity(budget["Part"])
    out = {}
    for name, key, total_key, share in CONSTRAINTS:
        value = budget[key]
        if value is None:
            continue
        out[name] = cap[total_key] * value / 100.0 if share else float(value)
    return out


def ranked(estimate: dict) -> dict:
    """The numbers a budget checks: a whole ``estimate()`` result gives its ``cost`` (post-synthesis resources by
    default, its ``basis``; latency/II from csynth); a bare totals dict is taken as it is."""
    if "total" in estimate:
        return estimate.get("cost") or estimate["total"]
    return estimate


def excess(total: dict, budget_limits: dict[str, float]) -> dict[str, float]:
    """Constraint name -> relative excess (value - limit) / limit: <= 0 within budget. ``total``: an ``estimate()``
    result (its basis decides) or a totals dict."""
    total = ranked(total)
    keys = {name: total_key for name, _, total_key, _ in CONSTRAINTS}
    out = {}
    for name, limit in budget_limits.items():
        value = float(total[keys[name]])
        out[name] = (value - limit) / limit if limit > 0 else (math.inf if value > 0 else 0.0)
    return out


def tightest(records: list[dict]) -> str | None:
    """The constraint violated by most trials (ties: by the largest margin), as a sentence; None if none is."""
    counts: dict[str, int] = {}
    worst: dict[str, float] = {}
    for r in records:
        for name, over in (r.get("excess") or {}).items():
            if over is not None and over > 0:
                counts[name] = counts.get(name, 0) + 1
                worst[name] = max(worst.get(name, 0.0), over)
    if not counts:
        return None
    name = max(counts, key=lambda n: (counts[n], worst[n]))
    key = next(k for n, k, _, _ in CONSTRAINTS if n == name)
    by = "over a limit of 0" if math.isinf(worst[name]) else f"by up to {worst[name]:.0%}"
    return f"{name} (search.budget.{key}) is exceeded by {counts[name]} of {len(records)} trials, {by}"


def closest(records: list[dict], budget_limits: dict[str, float]) -> str | None:
    """The trial nearest the budget (smallest worst excess) and the limits it breaks, as a sentence; None when no
    trial was checked. Its numbers are those of the trial's reported design (an hgq trial's closest snapshot)."""
    checked = [r for r in records if r.get("excess")]
    if not checked:
        return None
    r = min(checked, key=lambda r: (max(v for v in r["excess"].values() if v is not None), -(r.get("accuracy") or 0)))
    keys = {name: ("bram" if total_key == "bram_18k" else total_key) for name, _, total_key, _ in CONSTRAINTS}
    broken = [f"{name} {shown(float(r[keys[name]]))} > {shown(budget_limits[name])}{UNITS.get(name, '')}"
              for name, over in r["excess"].items() if over is not None and over > 0 and name in budget_limits]
    return f"closest was trial {r['trial']} ({r.get('method') or 'qkeras'}, val acc {r.get('accuracy', 0):.4f}): " \
           + ", ".join(broken)


def shown(value: float) -> str:
    """A resource count or limit as a person reads it: 16,561 and 15,960, but 1.1 (0.5% of 220 DSPs is not 1)."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
