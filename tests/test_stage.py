"""The convert stage with the emulator engine: no g++ anywhere in this file."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from edgeml import config
from edgeml.errors import InputError
from edgeml.firmware import stage
from edgeml.firmware.stage import convert, recipe_files
from edgeml.modelio import save_model

FIXTURES = Path(__file__).parent / "fixtures"
QKERAS = FIXTURES / "keras224_qkeras_pruned.json"
N = 300


def tagger(path: Path) -> Path:
    tf.keras.utils.set_random_seed(5)
    model = tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(16,), name="x"),
                                 tf.keras.layers.Dense(16, activation="relu", name="fc1"),
                                 tf.keras.layers.Dense(5, name="output"),
                                 tf.keras.layers.Activation("softmax", name="softmax")])
    save_model(model, path)
    return path


def test_engine_emulate_works_without_a_compiler(tmp_path):
    """PATH holds only an empty folder: hls4ml cannot find g++ (nor a shell), so any compile fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert shutil.which("g++", path=env["PATH"]) is None
    args = [sys.executable, "-m", "edgeml", "convert", str(QKERAS), "--n", str(N), "--json"]
    done = subprocess.run(args + ["--output", str(tmp_path / "emu"), "--engine", "emulate"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["csim"]["engine"] == "emulate" and set(report["engines"]) == {"emulate"}
    assert report["library"] is None and report["csim"]["bit_exact_logits"]
    assert (tmp_path / "emu" / "firmware" / "myproject.cpp").is_file()  # the project is still written
    failed = subprocess.run(args + ["--output", str(tmp_path / "sim"), "--engine", "csim"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert failed.returncode != 0  # the same environment cannot C-simulate: the test above is meaningful


def test_unknown_engine_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="engine 'gpu' is unknown; use one of emulate, csim, both"):
        convert(QKERAS, output_dir=tmp_path / "p", engine="gpu")
    with pytest.raises(Exception, match="convert.engine"):
        config.validate({"convert": {"engine": "fast"}})


def test_default_engine_is_the_emulator_and_a_cache_hit_needs_the_same_engine(tmp_path):
    report = convert(QKERAS, output_dir=tmp_path / "p", n=N)
    assert report["csim"]["engine"] == "emulate" and report["engine_note"] is None
    assert report["csim"]["jets_per_second"] > 0
    assert convert(QKERAS, output_dir=tmp_path / "p", n=N)["cache"]["hit"]


def test_softmax_settings_argmax_and_skip(tmp_path):
    model = tagger(tmp_path / "t.h5")
    reports = {}
    for label, layer in (("stable", {}), ("argmax", {"Implementation": "argmax"}), ("skip", {"Skip": True})):
        cfg = config.validate({"hls": {"LayerName": {"softmax": layer}}} if layer else {})
        reports[label] = convert(model, cfg, output_dir=tmp_path / label, n=N)
    stable, argmax, skip = (reports[k]["csim"] for k in ("stable", "argmax", "skip"))
    assert stable["softmax"] == "stable" and argmax["softmax"] == "argmax" and skip["softmax"] is None
    # the firmware decision is the pre-softmax one with either setting
    assert argmax["argmax_agreement"] == argmax["argmax_agreement_logits"] == stable["argmax_agreement_logits"]
    assert skip["argmax_agreement"] == skip["argmax_agreement_logits"] == stable["argmax_agreement_logits"]
    assert skip["logits_layer"] == "output" and reports["skip"]["layers"][-1]["name"] == "output"
    with np.load(tmp_path / "argmax" / "predictions.npz") as z:
        assert set(np.unique(z["csim"])) <= {0.0, 1.0} and np.all(z["csim"].sum(axis=1) == 1)
    assert "softmax" not in reports["argmax"]["suggested_precision"]  # no tables to refine


def test_cache_key_hashes_every_module_of_the_package():
    names = {p.name for p in recipe_files()}
    package = Path(stage.__file__).parent
    assert {p.name for p in package.glob("*.py")} <= names
    assert all("__pycache__" not in str(p) for p in recipe_files())
