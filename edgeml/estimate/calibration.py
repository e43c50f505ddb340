"""Local calibration: per-metric correction factors learned from the user's own synthesised projects.

``calibrate(project_dirs)`` estimates each hls4ml project folder, reads its csynth report and stores the
report/estimate ratios in ``<config dir>/estimate_calibration.json`` (``$EDGEML_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/edgeml`` or ``~/.config/edgeml``). Later estimates multiply their totals (and ranges)
by the geometric mean of the stored ratios of designs of the same kind (dense / conv). Calibrating a
folder again replaces its entry. The file is written atomically under a lock, so concurrent calibrations
do not lose each other's designs; a garbled file is ignored with a warning.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from edgeml.errors import InputError

FILE_NAME = "estimate_calibration.json"
CALIBRATED = ("dsp", "lut", "ff", "bram_18k", "latency_min", "latency_max", "ii")
FACTOR_LIMITS = (0.2, 5.0)  # a ratio outside this says "different design", not "systematic bias"


def config_dir() -> Path:
    if os.environ.get("EDGEML_CONFIG_DIR"):
        return Path(os.environ["EDGEML_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "edgeml"


def calibration_path() -> Path:
    return config_dir() / FILE_NAME


def _lock(path: Path):
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=30)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"designs": {}}
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable calibration file ({e}); run 'edgeml estimate --calibrate --reset'") from None
    if not isinstance(data, dict) or not isinstance(data.get("designs"), dict):
        raise InputError(f"{path}: not an edgeml calibration file; run 'edgeml estimate --calibrate --reset'")
    return data


def calibrate(project_dirs, coefficients: dict | None = None, tool: str | None = None) -> dict:
    """Add the projects' report/estimate ratios to the stored calibration; returns the new calibration."""
    from edgeml.estimate import estimate_project

    entries = {}
    for project in project_dirs:
        project = Path(project).resolve()
        result = estimate_project(project, coefficients=coefficients, tool=tool, calibration=False)
        report = (result.get("report") or {}).get("csynth")
        if report is None:
            raise InputError(f"{project}: no csynth report (<prj>_prj/solution1/syn/report/*_csynth.xml or .rpt); "
                             "synthesise it first (hls_model.build(csim=False, synth=True))")
        ratios = {}
        for k in CALIBRATED:
            est, rep = result["total"].get(k), report.get(k)
            if est and rep and est > 0 and rep > 0:
                ratios[k] = rep / est
        entries[str(project)] = {"kind": result["kind"], "tool": result["settings"]["tool"], "ratios": ratios}
    path = calibration_path()
    from edgeml.io import write_json

    with _lock(path):
        try:
            data = _read(path)
        except InputError:
            data = {"designs": {}}  # a garbled file is replaced by what we just measured
        data["designs"].update(entries)
        data["factors"] = factors_from(data["designs"])
        write_json(path, data)
    return data


def factors_from(designs: dict) -> dict:
    """Per kind and metric: geometric mean of report/estimate over the stored designs, and their count."""
    out: dict = {}
    for kind in ("dense", "conv"):
        sub = [d for d in designs.values() if d.get("kind") == kind]
        fam = {}
        for k in CALIBRATED:
            logs = [math.log(d["ratios"][k]) for d in sub if d.get("ratios", {}).get(k, 0) > 0]
            if logs:
                f = math.exp(sum(logs) / len(logs))
                fam[k] = round(min(FACTOR_LIMITS[1], max(FACTOR_LIMITS[0], f)), 4)
        if fam:
            out[kind] = {"factors": fam, "designs": len(sub)}
    return out


def load() -> tuple[dict | None, str | None]:
    """(calibration, warning): the stored calibration, or None; a warning when the file is unusable."""
    path = calibration_path()
    if not path.is_file():
        return None, None
    try:
        data = _read(path)
    except InputError as e:
        return None, f"calibration ignored: {e}"
    return data, None


def reset() -> bool:
    """Remove the stored calibration; True if there was one."""
    path = calibration_path()
    with _lock(path):
        existed = path.is_file()
        if existed:
            path.unlink()
    return existed


def apply(total: dict, kind: str, calibration: dict | None) -> dict | None:
    """Scale ``total`` (and its ranges) in place by the factors for ``kind``; the applied record or None."""
    entry = ((calibration or {}).get("factors") or {}).get(kind)
    if not entry:
        return None
    for k, f in entry["factors"].items():
        if k not in total:
            continue
        cycles = k in ("latency_min", "latency_max", "ii")
        total[k] = max(1, round(total[k] * f)) if cycles else round(total[k] * f, 1 if k == "bram_18k" else 0)
        lo, hi = total.get(f"{k}_range", (None, None))
        if lo is not None:
            total[f"{k}_range"] = [round(lo * f) if cycles else round(lo * f, 1), round(hi * f) if cycles else round(hi * f, 1)]
    return {"designs": entry["designs"], "factors": entry["factors"], "file": str(calibration_path())}
