"""Read real synthesis reports from an hls4ml project: HLS csynth (XML) and Vivado utilization.

Written with the standard library only (no hls4ml import) so a folder synthesised elsewhere can be
compared with the estimate quickly, and so tests can check parsing on real reports.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from edgeml.errors import InputError
from edgeml.estimate.tools import parse_tool


def _tool(path: Path, version: str, header_tool: str = "") -> str:
    """'vivado-2020.1' / 'vitis-2024.1' from a report's version (and 'Vivado HLS'/'Vitis HLS' banner)."""
    kind = "vitis" if "vitis" in header_tool.lower() else "vivado" if "vivado" in header_tool.lower() else ""
    try:
        return parse_tool(f"{kind}-{version}" if kind else version)["name"]
    except InputError:
        raise InputError(f"{path}: report from an unknown tool (version {version!r}); edgeml reads csynth reports of "
                         "Vivado HLS 2017-2020.1 and Vitis HLS 2020.2+") from None

def _int(node, path: str) -> int | None:
    el = node.find(path)
    if el is None or el.text is None:
        return None
    try:
        return int(float(el.text.strip()))
    except ValueError:
        return None  # "undef" when HLS could not bound a loop


def _float(node, path: str) -> float | None:
    el = node.find(path)
    try:
        return float(el.text.strip()) if el is not None and el.text else None
    except ValueError:
        return None


def parse_csynth_xml(path: Path) -> dict:
    """Top-level totals of one ``*_csynth.xml``: resources, latency (cycles), II, clock, part, tool version."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise InputError(f"{path}: not a readable csynth XML report ({e}); re-run csynth or remove the file") from None
    if root.tag != "profile" or root.find("ReportVersion/Version") is None:
        raise InputError(f"{path}: report from an unknown tool (no Vivado/Vitis HLS <profile><ReportVersion>); "
                         "give the csynth.xml that Vivado or Vitis HLS wrote")
    res = root.find("AreaEstimates/Resources")
    lat = root.find("PerformanceEstimates/SummaryOfOverallLatency")
    if res is None or lat is None:
        raise InputError(f"{path}: csynth XML without AreaEstimates/PerformanceEstimates; is it a Vivado/Vitis HLS report?")
    dsp = _int(res, "DSP48E")
    if dsp is None:
        dsp = _int(res, "DSP")  # Vitis HLS names it DSP
    clock = _float(root, "UserAssignments/TargetClockPeriod")
    report = {
        "file": str(path),
        "tool_version": (root.findtext("ReportVersion/Version") or "").strip(),
        "tool": _tool(path, (root.findtext("ReportVersion/Version") or "").strip()),
        "part": (root.findtext("UserAssignments/Part") or "").strip(),
        "top": (root.findtext("UserAssignments/TopModelName") or "").strip(),
        "clock_period_ns": clock,
        "estimated_clock_ns": _float(root, "PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod"),
        "dsp": dsp,
        "lut": _int(res, "LUT"),
        "ff": _int(res, "FF"),
        "bram_18k": _int(res, "BRAM_18K"),
        "uram": _int(res, "URAM") or 0,
        "latency_min": _int(lat, "Best-caseLatency"),
        "latency_max": _int(lat, "Worst-caseLatency"),
        "ii": _int(lat, "Interval-max"),
    }
    if report["latency_max"] is not None and clock:
        report["latency_ns"] = round(report["latency_max"] * clock, 3)
    return report


def parse_csynth_rpt(path: Path) -> dict:
    """The same totals from the text ``*_csynth.rpt`` (some projects only keep that)."""
    text = Path(path).read_text(errors="replace")
    report: dict = {"file": str(path)}
    banner = re.search(r"==\s*(Vivado HLS|Vitis HLS)\s+Report", text)
    m = re.search(r"\* Version:\s*(\S+)", text)
    if not (banner and m):
        raise InputError(f"{path}: report from an unknown tool (no 'Vivado HLS'/'Vitis HLS Report' banner and version); "
                         "give the csynth report that Vivado or Vitis HLS wrote")
    report["tool_version"] = m.group(1)
    report["tool"] = _tool(path, m.group(1), banner.group(1))
    m = re.search(r"\* Target device:\s*(\S+)", text)
    report["part"] = m.group(1) if m else ""
    m = re.search(r"^\s*\|ap_clk\s*\|\s*([\d.]+)\s*ns\s*\|\s*([\d.]+)\s*ns", text, flags=re.M)
    if m:
        report["clock_period_ns"], report["estimated_clock_ns"] = float(m.group(1)), float(m.group(2))
    # first latency summary row: |min|max|abs min|abs max|II min|II max|type|
    m = re.search(r"\|\s*(\d+)\s*\|\s*(\d+)\s*\|[^|\n]*\|[^|\n]*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", text)
    if m:
        report["latency_min"], report["latency_max"], report["ii"] = int(m.group(1)), int(m.group(2)), int(m.group(4))
    header = re.search(r"^\|\s*Name\s*\|(.*)\|\s*$", text, flags=re.M)
    total = re.search(r"^\|Total\s*\|(.*)\|\s*$", text[header.end():] if header else "", flags=re.M)
    if not (header and total and "latency_max" in report):
        raise InputError(f"{path}: unrecognised csynth.rpt layout; pass the csynth.xml instead")
    names = [h.strip() for h in header.group(1).split("|")]
    values = [v.strip() for v in total.group(1).split("|")]
    columns = {"BRAM_18K": "bram_18k", "DSP48E": "dsp", "DSP": "dsp", "FF": "ff", "LUT": "lut", "URAM": "uram"}
    for name, value in zip(names, values):
        if name in columns:
            report[columns[name]] = int(value) if value.isdigit() else 0
    if report.get("clock_period_ns"):
        report["latency_ns"] = round(report["latency_max"] * report["clock_period_ns"], 3)
    return report


_VIVADO_ROWS = {
    "lut": r"(?:CLB|Slice) LUTs\*?",
    "ff": r"(?:CLB|Slice) Registers",
    "dsp": r"DSPs",
    "bram_tile": r"Block RAM Tile",
    "uram": r"URAM",
}


def parse_vivado_utilization(path: Path) -> dict:
    """Post-synthesis ``report_utilization`` numbers: LUT, FF, DSP, BRAM (36 Kb tiles and 18K units), URAM."""
    text = Path(path).read_text(errors="replace")
    out: dict = {"file": str(path)}
    for key, label in _VIVADO_ROWS.items():
        m = re.search(r"^\|\s*" + label + r"\s*\|\s*([\d.]+)\s*\|", text, flags=re.M)
        if m:
            value = float(m.group(1))
            out[key] = int(value) if value.is_integer() else value
    if "bram_tile" in out:
        out["bram_18k"] = out["bram_tile"] * 2
    if not any(k in out for k in ("lut", "ff", "dsp")):
        raise InputError(f"{path}: no utilization table found; expected Vivado report_utilization output")
    return out


def find_csynth_xml(project_dir: Path) -> Path | None:
    """The top-level csynth XML of a project: <prj>_prj/solution1/syn/report/<top>_csynth.xml or csynth.xml."""
    project_dir = Path(project_dir)
    candidates = sorted(project_dir.glob("*_prj/*/syn/report/*_csynth.xml")) + sorted(project_dir.glob("*_csynth.xml"))
    tops = [p for p in candidates if p.name == "myproject_csynth.xml"] or [
        p for p in candidates if (p.parent / "csynth.xml").exists()] or candidates
    for path in tops:  # the top function's report is the one named like the project (or beside csynth.xml)
        if path.name.removesuffix("_csynth.xml") in {project_dir.name, "myproject"} or len(tops) == 1:
            return path
    generic = sorted(project_dir.glob("*_prj/*/syn/report/csynth.xml"))
    return generic[0] if generic else (tops[0] if tops else None)


def find_vivado_utilization(project_dir: Path) -> Path | None:
    for name in ("vivado_synth.rpt", "util.rpt", "vivado_utilization.rpt"):
        hits = sorted(Path(project_dir).glob(name)) + sorted(Path(project_dir).glob(f"*_prj/*/{name}"))
        if hits:
            return hits[0]
    return None


def read_project_reports(project_dir: Path) -> dict | None:
    """{'csynth': {...}, 'vivado': {...}} for whatever reports the project holds; None when it has none."""
    out: dict = {}
    xml = find_csynth_xml(project_dir)
    if xml is not None:
        out["csynth"] = parse_csynth_xml(xml)
    else:
        rpts = sorted(Path(project_dir).glob("*_prj/*/syn/report/*_csynth.rpt")) + sorted(Path(project_dir).glob("*_csynth.rpt"))
        tops = [p for p in rpts if p.name == "myproject_csynth.rpt"] or rpts[:1]
        if tops:
            out["csynth"] = parse_csynth_rpt(tops[0])
    util = find_vivado_utilization(project_dir)
    if util is not None:
        try:
            out["vivado"] = parse_vivado_utilization(util)
        except InputError:
            pass  # a timing-only or truncated report: the csynth numbers still stand
    return out or None
