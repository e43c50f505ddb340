"""Capacities of common AMD/Xilinx parts, as the HLS tools report them (DSP, LUT, FF, BRAM_18K, URAM).

Numbers are the "Available" rows of csynth reports where we have them (xcu250, xcu50, xcu55c, xcvu13p,
xczu5ev, xc7z020, xc7z007s) and the AMD product tables otherwise. ``family`` decides the DSP slice (DSP48E1 25x18 on
7-series, DSP48E2 27x18 on UltraScale/UltraScale+) and a relative logic speed used for timing.
"""

from __future__ import annotations

import re

# family: (dsp_a_bits, dsp_b_bits, relative logic delay; 1.0 = UltraScale+ -2). The HLS timing models treat
# 7-series as far slower than UltraScale+; the estimator refits that factor (timing.delay_7series).
FAMILIES = {
    "7series": (25, 18, 2.5),
    "ultrascale": (27, 18, 1.25),
    "ultrascale+": (27, 18, 1.0),
}

DEVICES = {
    "xcu250": {"family": "ultrascale+", "dsp": 12288, "lut": 1728000, "ff": 3456000, "bram_18k": 5376, "uram": 1280},
    "xcu200": {"family": "ultrascale+", "dsp": 6840, "lut": 1182240, "ff": 2364480, "bram_18k": 4320, "uram": 960},
    "xcu50": {"family": "ultrascale+", "dsp": 5952, "lut": 871680, "ff": 1743360, "bram_18k": 2688, "uram": 640},
    "xcvu9p": {"family": "ultrascale+", "dsp": 6840, "lut": 1182240, "ff": 2364480, "bram_18k": 4320, "uram": 960},
    "xcvu13p": {"family": "ultrascale+", "dsp": 12288, "lut": 1728000, "ff": 3456000, "bram_18k": 5376, "uram": 1280},
    "xczu9eg": {"family": "ultrascale+", "dsp": 2520, "lut": 274080, "ff": 548160, "bram_18k": 1824, "uram": 0},
    "xczu7ev": {"family": "ultrascale+", "dsp": 1728, "lut": 230400, "ff": 460800, "bram_18k": 624, "uram": 96},
    "xczu5ev": {"family": "ultrascale+", "dsp": 1248, "lut": 117120, "ff": 234240, "bram_18k": 288, "uram": 64},
    "xcu55c": {"family": "ultrascale+", "dsp": 9024, "lut": 1303680, "ff": 2607360, "bram_18k": 4032, "uram": 960},
    "xc7z007s": {"family": "7series", "dsp": 66, "lut": 14400, "ff": 28800, "bram_18k": 100, "uram": 0},
    "xc7z020": {"family": "7series", "dsp": 220, "lut": 53200, "ff": 106400, "bram_18k": 280, "uram": 0},
    "xc7z100": {"family": "7series", "dsp": 2020, "lut": 277400, "ff": 554800, "bram_18k": 1510, "uram": 0},
    "xc7a100t": {"family": "7series", "dsp": 240, "lut": 63400, "ff": 126800, "bram_18k": 270, "uram": 0},
    "xc7a35t": {"family": "7series", "dsp": 90, "lut": 20800, "ff": 41600, "bram_18k": 100, "uram": 0},
    "xc7k325t": {"family": "7series", "dsp": 840, "lut": 203800, "ff": 407600, "bram_18k": 890, "uram": 0},
    "xcku040": {"family": "ultrascale", "dsp": 1920, "lut": 242400, "ff": 484800, "bram_18k": 1200, "uram": 0},
    "xczu3eg": {"family": "ultrascale+", "dsp": 360, "lut": 70560, "ff": 141120, "bram_18k": 432, "uram": 0},
    "xcku115": {"family": "ultrascale", "dsp": 5520, "lut": 663360, "ff": 1326720, "bram_18k": 4320, "uram": 0},
    # trigger boards: Virtex-7 (Phase-1 L1 trigger processors), Kintex/Virtex UltraScale+ (Phase-2 ATCA boards),
    # and the Alveo / Zynq parts hls4ml users build for
    "xc7vx690t": {"family": "7series", "dsp": 3600, "lut": 433200, "ff": 866400, "bram_18k": 2940, "uram": 0},
    "xc7vx485t": {"family": "7series", "dsp": 2800, "lut": 303600, "ff": 607200, "bram_18k": 2060, "uram": 0},
    "xc7z045": {"family": "7series", "dsp": 900, "lut": 218600, "ff": 437200, "bram_18k": 1090, "uram": 0},
    "xc7a200t": {"family": "7series", "dsp": 740, "lut": 133800, "ff": 267600, "bram_18k": 730, "uram": 0},
    "xcku060": {"family": "ultrascale", "dsp": 2760, "lut": 331680, "ff": 663360, "bram_18k": 2160, "uram": 0},
    "xcvu095": {"family": "ultrascale", "dsp": 768, "lut": 537600, "ff": 1075200, "bram_18k": 3456, "uram": 0},
    "xcku5p": {"family": "ultrascale+", "dsp": 1824, "lut": 216960, "ff": 433920, "bram_18k": 960, "uram": 64},
    "xcku15p": {"family": "ultrascale+", "dsp": 1968, "lut": 522720, "ff": 1045440, "bram_18k": 1968, "uram": 128},
    "xcvu3p": {"family": "ultrascale+", "dsp": 2280, "lut": 394080, "ff": 788160, "bram_18k": 1440, "uram": 320},
    "xcvu7p": {"family": "ultrascale+", "dsp": 4560, "lut": 788160, "ff": 1576320, "bram_18k": 2880, "uram": 640},
    "xcvu11p": {"family": "ultrascale+", "dsp": 9216, "lut": 1296000, "ff": 2592000, "bram_18k": 4032, "uram": 960},
    "xcvu19p": {"family": "ultrascale+", "dsp": 3840, "lut": 4085760, "ff": 8171520, "bram_18k": 4320, "uram": 320},
    "xcu280": {"family": "ultrascale+", "dsp": 9024, "lut": 1303680, "ff": 2607360, "bram_18k": 4032, "uram": 960},
    "xczu4ev": {"family": "ultrascale+", "dsp": 728, "lut": 87840, "ff": 175680, "bram_18k": 256, "uram": 48},
    "xczu15eg": {"family": "ultrascale+", "dsp": 3528, "lut": 341280, "ff": 682560, "bram_18k": 1488, "uram": 112},
    "xczu19eg": {"family": "ultrascale+", "dsp": 1968, "lut": 522720, "ff": 1045440, "bram_18k": 1968, "uram": 128},
}

RESOURCES = ("dsp", "lut", "ff", "bram_18k", "uram")


def device_key(part: str) -> str | None:
    """'xcu250-figd2104-2L-e' / 'xc7z020clg400-1' -> 'xcu250' / 'xc7z020' (longest known prefix)."""
    p = (part or "").lower().strip()
    matches = [k for k in DEVICES if p.startswith(k)]
    return max(matches, key=len) if matches else None


def speed_grade(part: str) -> int:
    """The speed grade digit of a part name (-1 slowest, -3 fastest); 2 when unknown."""
    m = re.search(r"-(\d)(?:[a-z]*)(?:-[a-z])?$", (part or "").lower())
    return int(m.group(1)) if m else 2


def lookup(part: str) -> dict:
    """Capacity, family and DSP geometry of a part; unknown parts get ``known: False`` and no capacity."""
    key = device_key(part)
    info = dict(DEVICES[key]) if key else {"family": _guess_family(part)}
    a, b, delay = FAMILIES[info["family"]]
    # slower speed grades stretch every delay; -1 is ~15% slower than -2
    grade = {1: 1.15, 2: 1.0, 3: 0.9}.get(speed_grade(part), 1.0)
    info.update(part=part, device=key, known=key is not None, dsp_a_bits=a, dsp_b_bits=b, logic_delay=delay * grade,
                grade_factor=grade)
    return info


def _guess_family(part: str) -> str:
    p = (part or "").lower()
    if re.match(r"xc7[azksv]", p):  # Artix, Zynq-7000, Kintex, Spartan and Virtex-7
        return "7series"
    if re.match(r"xc(ku|vu)\d+(?![\dp])", p):  # xcku040, xcvu095; xcku11p, xcvu35p are UltraScale+
        return "ultrascale"
    return "ultrascale+"
