"""The front's models as files ready for ``edgeml convert``, their firmware-exact test accuracy, and the
reference recipes estimated the same way as the trials."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgeml import config as cfgmod
from edgeml.io import read_json
from edgeml.search import budget as budgets
from edgeml.search import space as spaces
from edgeml.search.records import cost_of

FRONT_DIR = "front"
REFERENCES = ("tutorial_qkeras", "edgeml_compact")


def front_name(design: dict) -> str:
    """trial_NNNN, or trial_NNNN_eEEEE for a snapshot of an HGQ trial."""
    epoch = design.get("epoch")
    return f"trial_{design['trial']:04d}" + (f"_e{epoch:04d}" if epoch is not None else "")


def save_front_model(run_dir: Path, design: dict, scaler) -> Path:
    """``front/<front_name>.h5`` + ``_scaler.json`` beside it (the layout ``edgeml convert`` reads)."""
    from edgeml.io import atomic_path

    out = Path(run_dir) / FRONT_DIR / f"{front_name(design)}.h5"
    with atomic_path(out) as tmp:
        shutil.copyfile(Path(run_dir) / design["model"], tmp)
    scaler.save(out.with_name(f"{out.stem}_scaler.json"))
    return out


def test_jets_file(cfg: dict, path: Path) -> Path:
    """The run's test split, unscaled (convert applies each model's scaler), as an NPZ."""
    from edgeml.data import load_jets, split_indices, subsample, write_npz

    d = cfg["data"]
    jets = subsample(load_jets(d["source"]), d["max_jets"], cfg["seed"])
    test = split_indices(jets.y, d["test_fraction"], d["val_fraction"], cfg["seed"])[2]
    return write_npz(jets.subset(test), path)


def firmware_test_accuracy(model_path: Path, hls: dict, test_jets: Path, project_dir: Path) -> dict:
    """Accuracy of the firmware on every test jet: the hls4ml project evaluated bit-exactly by ``convert``
    (the NumPy emulator; C-simulation for a layer the emulator does not cover)."""
    from edgeml.convert import convert
    from edgeml.modelio import load_model
    from edgeml.search.trial import hls_for

    with np.load(test_jets) as z:
        n = len(z["y"])
    hls = hls_for(load_model(model_path), hls)
    report = convert(model_path, config={"hls": hls}, output_dir=project_dir, data=test_jets, n=n, force=True)
    c = report["csim"]
    engine = "NumPy emulator (bit-exact)" if c.get("engine") == "emulate" else "hls4ml C-simulation (g++)"
    return {"accuracy_test": float(c["accuracy_csim"]), "accuracy_test_keras": float(c["accuracy_keras"]),
            "n_test": int(c["n"]), "test_engine": engine,
            "timing_risk": (report.get("estimate") or {}).get("timing_risk")}


def reference_models_dir() -> Path | None:
    """``models/`` of the working directory or of the edgeml source tree, where the reference recipes live."""
    here = Path(__file__).resolve().parents[2] / "models"
    for candidate in (Path.cwd() / "models", here):
        if all((candidate / f"{name}.h5").is_file() for name in REFERENCES):
            return candidate
    return None


def references(cfg: dict, search: dict) -> dict:
    """tutorial_qkeras and edgeml_compact estimated like a trial (same part, clock, default input type).

    Accuracy is the metrics file's Keras test accuracy (the trials' front is re-measured in C-sim).
    """
    from edgeml.convert import build_hls_model
    from edgeml.estimate import estimate
    from edgeml.modelio import load_model

    from edgeml.compress.cost import model_cost
    from edgeml.search.trial import qkeras_ebops

    folder = reference_models_dir()
    if folder is None:
        return {}
    budget = search["budget"]
    hls = {**cfg["hls"], "Part": budget["Part"], "ClockPeriod": budget["ClockPeriod"]}
    out = {}
    for name in REFERENCES:
        metrics = read_json(folder / f"{name}_metrics.json")
        model = load_model(folder / f"{name}.h5")
        with tempfile.TemporaryDirectory(prefix="edgeml-ref-") as tmp:
            result = estimate(build_hls_model(model, hls, tmp), basis=cfgmod.estimate_basis(cfg))
        total = budgets.ranked(result)
        row = {"accuracy_test": float(metrics["accuracy"]), "lut": int(round(total["lut"])),
               "dsp": int(round(total["dsp"])), "ff": int(round(total["ff"])), "bram": float(total["bram_18k"]),
               "latency_ns": float(total["latency_ns"]), "ii": int(total["ii"]), "bops": int(metrics["bops"]),
               "ebops": qkeras_ebops(model_cost(model)), "params": int(metrics["nonzero_weights"]),
               "method": spaces.QKERAS, "source": str(folder / f"{name}.h5"), "timing_risk": result["timing_risk"]}
        row["cost"] = cost_of(row, search["objective"])
        out[name] = row
    return out


def describe(design: dict) -> str:
    """A design's architecture in one short line (method, widths, bits, strategy; an HGQ snapshot's epoch)."""
    params = design["config"]
    strategy, reuse = spaces.strategy_and_reuse(params)
    widths = " - ".join(map(str, spaces.hidden_widths(params)))
    shared = f"{'distilled, ' if params['distill'] else ''}RF {reuse} {strategy}, lr {params['learning_rate']:.4f}"
    if design.get("method") == spaces.HGQ:
        return (f"HGQ in {params['input_bits']}b - {widths} - out, init {params['hgq_init_bits']}b, beta "
                f"{params['hgq_beta_start']:.1e}->{params['hgq_beta_end']:.1e}, epoch {design.get('epoch')} "
                f"(beta {design.get('beta') or 0:.1e}), {shared}")
    return "QKeras " + describe_params(params)


def describe_params(params: dict) -> str:
    """A QKeras trial's architecture in one short line: 16-32(6b/6a)-..., input, sparsity, RF, strategy."""
    parts = [f"{w}({params[f'weight_bits_{i}']}b/{params[f'activation_bits_{i}']}a)"
             for i, w in enumerate(spaces.hidden_widths(params), start=1)]
    return (f"in {params['input_bits']}b - " + " - ".join(parts) + f" - out({params['weight_bits_out']}b), "
            f"sparsity {params['sparsity']:.2f}, {'distilled, ' if params['distill'] else ''}"
            f"RF {params['ReuseFactor']} {params['Strategy']}, lr {params['learning_rate']:.4f}")
