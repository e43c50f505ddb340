"""The HLS tool that will synthesise the design: Vivado HLS (2017-2020.1) or Vitis HLS (2020.2 and later).

The tool is an input of the estimate, shown in every result. It matters in two ways: hls4ml's Vitis
backend defaults to a 27% clock uncertainty (Vivado: 12.5%), so Vitis pipelines deeper at the same clock;
and the two tools map the same C++ to different LUT/FF counts (factors learned from the ground truth,
``coefficients.json`` -> ``tools``).
"""

from __future__ import annotations

import re

from edgeml.errors import InputError

DEFAULT_TOOL = "vitis-2023.2"  # a current Vitis HLS release that hls4ml 1.3 supports
DEFAULT_UNCERTAINTY = {"vivado": 0.125, "vitis": 0.27}  # hls4ml's Vivado / Vitis backend defaults


def parse_tool(text: str | None) -> dict:
    """'vitis-2023.2', 'Vitis HLS 2022.2', 'vivado-2020.1', or a bare version '2019.2' -> {'kind', 'version', 'name'}."""
    raw = str(text or DEFAULT_TOOL).strip()
    m = re.fullmatch(r"(?i)(vivado|vitis)?(?:[\s_-]*hls)?[\s_-]*v?(20\d\d)(?:\.(\d+))?(?:\.\d+)*", raw)
    if not m:
        raise InputError(f"unknown HLS tool {raw!r}; give e.g. 'vitis-2023.2' or 'vivado-2020.1'")
    year, minor = int(m.group(2)), int(m.group(3) or 1)
    # Vitis HLS replaced Vivado HLS with release 2020.2
    kind = (m.group(1) or ("vivado" if (year, minor) <= (2020, 1) else "vitis")).lower()
    if kind == "vivado" and (year, minor) > (2020, 1):
        raise InputError(f"{raw!r}: Vivado HLS ended with 2020.1; later releases are Vitis HLS (e.g. 'vitis-{year}.{minor}')")
    version = f"{year}.{minor}"
    return {"kind": kind, "version": version, "name": f"{kind}-{version}"}


def tool_from_backend(backend: str | None) -> str:
    """The tool an hls4ml backend drives: Vivado/VivadoAccelerator -> Vivado HLS 2020.1, else the Vitis default."""
    return "vivado-2020.1" if str(backend or "").lower().startswith("vivado") else DEFAULT_TOOL
