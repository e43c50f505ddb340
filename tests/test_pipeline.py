"""Run directories: refusal, atomic manifests and stage reuse by content hash."""

import json

import pytest

from edgeml import config, pipeline
from edgeml.errors import InputError


def cfg(epochs=2):
    return config.validate({"name": "t", "data": {"max_jets": 800},
                            "train": {"epochs": epochs, "batch_size": 128}})


def only_early_stages(monkeypatch):
    """Restrict to data + baseline so the test stays fast whatever later issues add."""
    monkeypatch.setattr(pipeline, "STAGES", [s for s in pipeline.STAGES if s.name in ("data", "baseline")])


def test_rerun_reuses_and_change_reruns_downstream_only(tmp_path, monkeypatch):
    only_early_stages(monkeypatch)
    run_dir = tmp_path / "run"
    first = pipeline.run(cfg(), run_dir, progress=False)
    assert (run_dir / "models" / "baseline.h5").is_file() and (run_dir / "config.yaml").is_file()
    stamp = {k: v["finished"] + str(v["seconds"]) for k, v in first["stages"].items()}

    again = pipeline.run(cfg(), run_dir, progress=False)
    assert {k: v["finished"] + str(v["seconds"]) for k, v in again["stages"].items()} == stamp

    changed = pipeline.run(cfg(epochs=3), run_dir, force=True, progress=False)
    assert changed["stages"]["data"]["key"] == first["stages"]["data"]["key"]
    assert changed["stages"]["baseline"]["key"] != first["stages"]["baseline"]["key"]
    assert json.loads((run_dir / "models" / "baseline_metrics.json").read_text())["epochs_trained"] <= 3


def test_refuses_foreign_run_dir_without_force(tmp_path, monkeypatch):
    only_early_stages(monkeypatch)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "precious.txt").write_text("mine")
    with pytest.raises(InputError, match="files edgeml did not write; pass --force"):
        pipeline.run(cfg(), run_dir, only="data", progress=False)
    pipeline.run(cfg(), run_dir, only="data", progress=False, force=True)
    assert (run_dir / "precious.txt").read_text() == "mine"
    with pytest.raises(InputError, match="holds a different config"):
        pipeline.run(cfg(epochs=5), run_dir, only="data", progress=False)


def test_stage_selection_needs_inputs(tmp_path, monkeypatch):
    only_early_stages(monkeypatch)
    with pytest.raises(InputError, match="stage 'data' has no up-to-date result"):
        pipeline.run(cfg(), tmp_path / "r", only="baseline", progress=False)
    with pytest.raises(InputError, match="is not a stage"):
        pipeline.run(cfg(), tmp_path / "r2", only="nope", progress=False)


def test_interrupted_stage_leaves_no_partial_manifest(tmp_path, monkeypatch):
    only_early_stages(monkeypatch)

    def boom(ctx):
        raise RuntimeError("killed")

    stages = [pipeline.STAGES[0], pipeline.Stage("baseline", ("train",), ("data",), boom)]
    monkeypatch.setattr(pipeline, "STAGES", stages)
    with pytest.raises(RuntimeError):
        pipeline.run(cfg(), tmp_path / "r", progress=False)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["data"]
    assert not list((tmp_path / "r").rglob(".*.tmp*"))


def test_only_and_from_rerun_stages_even_when_unchanged(tmp_path, monkeypatch):
    only_early_stages(monkeypatch)
    calls = []
    stages = [pipeline.Stage(s.name, s.sections, s.needs, lambda ctx, s=s: calls.append(s.name) or s.fn(ctx), s.doc)
              for s in pipeline.STAGES]
    monkeypatch.setattr(pipeline, "STAGES", stages)
    run_dir = tmp_path / "r"
    pipeline.run(cfg(), run_dir, progress=False)
    pipeline.run(cfg(), run_dir, progress=False)
    assert calls == ["data", "baseline"]
    pipeline.run(cfg(), run_dir, only="baseline", progress=False)
    assert calls == ["data", "baseline", "baseline"]
    pipeline.run(cfg(), run_dir, from_stage="data", progress=False)
    assert calls == ["data", "baseline", "baseline", "data", "baseline"]
