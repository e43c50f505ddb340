"""The run report: rendered from hand-made artifacts (quick) and from a tiny real run (slow)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeml.io import write_json
from edgeml.report import NOT_AVAILABLE, pareto_front, render_report

CLASSES = ["g", "q", "w", "z", "t"]


def _fake_model(run_dir: Path, name: str, accuracy: float, dsp: int, lut: int, rng, convert: bool = True) -> dict:
    """Artifacts in the layout the stages write, with plausible numbers."""
    files = {"model": f"models/{name}.h5", "scaler": f"models/{name}_scaler.json",
             "metrics": f"models/{name}_metrics.json", "history": f"models/{name}_history.json"}
    write_json(run_dir / files["metrics"], {"name": name, "accuracy": accuracy, "n": 300,
                                            "auc": {c: 0.85 + 0.02 * i for i, c in enumerate(CLASSES)},
                                            "parameters": 4389, "nonzero_weights": 1100, "bops": 12345.0})
    write_json(run_dir / files["history"], {"loss": [1.2, 0.9, 0.8], "val_loss": [1.1, 0.95, 0.85],
                                            "accuracy": [0.5, 0.65, 0.7], "val_accuracy": [0.55, 0.64, 0.69]})
    if not convert:
        return files
    y = rng.integers(0, 5, 300)
    logits = rng.normal(size=(300, 5)) + 2.0 * np.eye(5)[y]
    keras = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    csim = np.round(keras * 64) / 64
    hls = run_dir / "hls" / name
    hls.mkdir(parents=True)
    np.savez(hls / "predictions.npz", y_true=y, keras=keras, csim=csim, keras_logits=logits, csim_logits=logits)
    layers = [{"name": n, "precision": "ap_fixed<16,6>", "max_abs_diff": 0.01, "overflow_fraction": 0.0,
               "range": [-32.0, 31.99], "output_range": [-3.0, 9.0], "weight_range": [-0.8, 0.9] if "fc" in n else None}
              for n in ("fc1", "relu1", "fc2", "relu2", "output")]
    layers[-1]["overflow_fraction"] = 0.002
    estimate = {"total": {"dsp": dsp, "lut": lut, "ff": 3000, "bram_18k": 0, "uram": 0, "latency_min": 9,
                          "latency_max": 9, "latency_ns": 45.0, "ii": 1,
                          "percentages": {"dsp": 100 * dsp / 12288, "lut": 100 * lut / 1728000}, "fits": True},
                "layers": [], "part": {"name": "xcu250-figd2104-2L-e"}, "warnings": []}
    write_json(hls / "convert_report.json", {
        "csim": {"n": 300, "accuracy_keras": accuracy, "accuracy_csim": accuracy - 0.002, "argmax_agreement": 0.99,
                 "max_abs_diff": 0.02, "mean_abs_diff": 0.001, "max_abs_diff_logits": 0.05,
                 "auc_keras": {c: 0.85 for c in CLASSES}, "auc_csim": {c: 0.849 for c in CLASSES}},
        "layers": layers, "suggested_precision": {}, "estimate": estimate})
    return files


@pytest.fixture
def fixture_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / "fixture"
    rng = np.random.default_rng(0)
    models = {"baseline": _fake_model(run_dir, "baseline", 0.76, 1500, 100000, rng),
              "tutorial_qkeras": _fake_model(run_dir, "tutorial_qkeras", 0.752, 40, 45000, rng),
              "edgeml_compact": _fake_model(run_dir, "edgeml_compact", 0.754, 10, 9000, rng),
              "untested": _fake_model(run_dir, "untested", 0.70, 0, 0, rng, convert=False)}
    write_json(run_dir / "manifest.json", {"stages": {
        "data": {"key": "k", "outputs": {"classes": CLASSES, "n_jets": 1500}},
        "baseline": {"key": "k", "outputs": {"models": {"baseline": models["baseline"]}}},
        "compress": {"key": "k", "outputs": {"models": {k: v for k, v in models.items() if k != "baseline"}}},
    }})
    return run_dir


def _embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]


def test_report_from_fixture_artifacts(fixture_run: Path):
    paths = render_report(fixture_run)
    page = paths["html"].read_text()
    pngs = _embedded_pngs(page)
    assert len(pngs) == 4 and all(p.startswith(b"\x89PNG") for p in pngs)  # ROC, cost, training, precision
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    for name in ("baseline", "tutorial_qkeras", "edgeml_compact", "untested"):
        assert name in page and name in paths["md"].read_text()
    summary = json.loads(paths["summary"].read_text())
    compact = summary["models"]["edgeml_compact"]
    assert compact["accuracy"] == 0.754 and compact["argmax_agreement"] == 0.99 and compact["bops"] == 12345.0
    assert compact["estimate"]["dsp"] == 10 and compact["estimate"]["latency_ns"] == 45.0
    assert compact["pareto"] and summary["models"]["baseline"]["pareto"]
    assert not summary["models"]["tutorial_qkeras"]["pareto"]  # edgeml_compact is cheaper and as accurate
    untested = summary["models"]["untested"]
    assert untested["accuracy_csim"] is None and "resource estimate" in untested["missing"]
    assert "untested: hls4ml conversion report" in page  # the missing artifact is named, not silently dropped
    assert page.count(f">{NOT_AVAILABLE}<") >= 8  # its firmware cells


def test_report_degrades_without_conversions(fixture_run: Path):
    import shutil

    shutil.rmtree(fixture_run / "hls")
    (fixture_run / "manifest.json").unlink()  # also: no manifest, models found by file layout
    paths = render_report(fixture_run)
    page = paths["html"].read_text()
    assert len(_embedded_pngs(page)) == 1  # only the training curves remain
    assert page.count("Not available: no model in this run") == 3
    assert set(json.loads(paths["summary"].read_text())["models"]) == {"baseline", "tutorial_qkeras",
                                                                       "edgeml_compact", "untested"}


def test_report_cli(fixture_run: Path, tmp_path: Path):
    from edgeml.cli import main

    result = CliRunner().invoke(main, ["report", str(fixture_run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["models"]["baseline"]["estimate"]["lut"] == 100000
    missing = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(main, ["report", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "holds no edgeml models" in empty.output


def test_pareto_front():
    points = {"a": (100.0, 0.70), "b": (50.0, 0.72), "c": (200.0, 0.75), "d": (300.0, 0.74)}
    assert pareto_front(points) == ["b", "c"]


# ----------------------------------------------------------------------------- a real tiny run

TINY_RECIPE = {"compression": {"name": "tiny_qkeras", "epochs": 2, "prune": {"sparsity": 0.5},
                               "quantize": {"enabled": True, "bits": 6, "integer": 0}}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """data -> baseline -> one tiny QKeras recipe -> hls4ml + C-sim -> estimate -> report, a few hundred jets."""
    import yaml

    from edgeml import config, pipeline

    tmp = tmp_path_factory.mktemp("tiny")
    recipe = tmp / "tiny_qkeras.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    cfg = config.validate({"name": "tiny", "data": {"max_jets": 600}, "model": {"hidden": [16, 8]},
                           "train": {"epochs": 2, "batch_size": 128}, "compression": {"recipes": [str(recipe)]}})
    pipeline.run(cfg, tmp / "run", progress=False)
    return tmp / "run"


def test_report_of_a_real_run(tiny_run: Path):
    import numpy as np

    summary = json.loads((tiny_run / "summary.json").read_text())
    assert list(summary["models"]) == ["baseline", "tiny_qkeras"]
    for name, s in summary["models"].items():
        assert 0 <= s["accuracy"] <= 1 and 0 <= s["accuracy_csim"] <= 1 and 0.5 <= s["argmax_agreement"] <= 1, name
        assert s["bops"] > 0 and s["estimate"]["lut"] > 0 and s["estimate"]["latency_ns"] > 0, name
        assert s["estimate"]["ii"] >= 1 and s["estimate"]["fits"] in (True, False) and s["missing"] == [], name
    # 6-bit QKeras weights use fewer DSPs and fewer BOPs than the 16-bit float baseline
    base, qk = summary["models"]["baseline"], summary["models"]["tiny_qkeras"]
    assert qk["estimate"]["dsp"] < base["estimate"]["dsp"] and qk["bops"] < base["bops"]
    page = (tiny_run / "report.html").read_text()
    assert len(_embedded_pngs(page)) == 4 and "Not available" not in page
    assert f">{NOT_AVAILABLE}<" not in page
    # the firmware was compared on the run's own test jets, in order
    with np.load(tiny_run / "data" / "splits.npz") as splits, \
            np.load(tiny_run / "hls" / "baseline" / "predictions.npz") as pred:
        n = len(pred["y_true"])
        assert n == min(len(splits["y_test"]), 10_000)
        np.testing.assert_array_equal(pred["y_true"], splits["y_test"][:n])
