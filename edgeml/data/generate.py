"""Generate hls4ml-style jets offline: Pythia8 pp collisions at 13 TeV, FastJet anti-kT R = 0.8.

Five classes as in the public dataset (Zenodo 3602260): light quark (q = u, d, s), gluon (g),
W -> qq', Z -> qq and top -> bqq'. Each class runs its own Pythia8 processes: QCD 2 -> 2 and ttbar
with pT-hat in 900-1100 GeV, W and Z from the decay of a 2 TeV W' -> W Z (longitudinal bosons with
pT near 1 TeV). A jet enters the sample only when it is matched (Delta R < 0.8) to the originating
parton or boson and, for W, Z and top, when every decay quark lies inside it. Features come from
``edgeml.data.features`` (pure numpy). Settings, selection and formulas: docs/data.md.

Needs the ``edgeml[generate]`` extra (pythia8mc, fastjet).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeml.data.features import feature_vector
from edgeml.data.load import CLASSES, FEATURES, JetData, write_npz
from edgeml.errors import EdgemlError, InputError
from edgeml.io import write_json
from edgeml.progress import Progress

SQRT_S = 13000.0
PT_HAT = (900.0, 1100.0)  # QCD and ttbar (2 -> 2); the W' (2 -> 1 resonance) is not cut on pT-hat
JET_R = 0.8
JET_PT = (700.0, 1300.0)  # accepted jet pT window (GeV): the pT-hat window widened for ISR/FSR
MATCH_R = 0.8
CHUNK_JETS = 1000  # jets per task: the unit of parallelism and of seeding
MAX_EVENTS_PER_JET = 20  # a chunk that needs more events than this has a broken selection

COMMON_SETTINGS = [
    f"Beams:eCM = {SQRT_S}",
    f"PhaseSpace:pTHatMin = {PT_HAT[0]}",
    f"PhaseSpace:pTHatMax = {PT_HAT[1]}",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
    # pi0 -> gamma gamma photon pairs are not resolved by a calorimeter; keeping the pi0 whole gives
    # constituent multiplicities on the detector-level scale of the public dataset (docs/data.md).
    "111:mayDecay = off",
]
HADRONIC_W = ["24:onMode = off", "24:onIfAny = 1 2 3 4 5"]
HADRONIC_Z = ["23:onMode = off", "23:onIfAny = 1 2 3 4 5"]
# W and Z jets come from a heavy resonance, W' -> W Z (extended gauge model coupling, Pythia's default
# 0 would close the channel). A W or Z from a TeV-scale resonance is longitudinally polarised, so its
# quarks share the momentum as z(1 - z) and mMDT keeps both prongs; a V + jet boson is mostly
# transverse and loses a prong to z_cut in about a quarter of the jets (docs/data.md, "Why W' -> WZ").
# m_W' = 2 TeV puts the bosons' Jacobian peak at pT ~ 1 TeV, the scale of the QCD and top jets.
WPRIME_MASS = 2000.0
WPRIME_TO_WZ = ["NewGaugeBoson:ffbar2Wprime = on", f"34:m0 = {WPRIME_MASS}", "Wprime:coup2WZ = 1",
                "34:onMode = off", "34:onIfAll = 23 24", *HADRONIC_W, *HADRONIC_Z]
PROCESSES = {
    "g": ["HardQCD:gg2gg = on", "HardQCD:qg2qg = on", "HardQCD:qqbar2gg = on"],
    # gg2qqbar and qqbar2qqbarNew produce u, d, s pairs (HardQCD:nQuarkNew = 3, the default).
    "q": ["HardQCD:qg2qg = on", "HardQCD:qq2qq = on", "HardQCD:qqbar2qqbarNew = on", "HardQCD:gg2qqbar = on"],
    # One W' -> W Z event gives a W and a Z; the W class keeps the W jet, the Z class the Z jet.
    "w": WPRIME_TO_WZ,
    "z": WPRIME_TO_WZ,
    "t": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *HADRONIC_W],
}
LIGHT_QUARKS = {1, 2, 3}
RESONANCE_ID = {"w": 24, "z": 23, "t": 6}


@dataclass
class ChunkResult:
    label: str
    index: int
    X: np.ndarray
    events: int
    seconds: float


@dataclass
class GenerationStats:
    events: dict[str, int] = field(default_factory=dict)
    jets: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0


def _import_generators():
    try:
        import fastjet
        import pythia8mc
    except ImportError as e:
        raise EdgemlError(f"jet generation needs Pythia8 and FastJet ({e}); "
                          "install them with: pip install 'edgeml[generate]'") from None
    return pythia8mc, fastjet


def chunk_seed(seed: int, label: str, index: int) -> int:
    """Pythia seed of one chunk: distinct per (seed, class, chunk), within Pythia's 1..900000000."""
    return (seed * 1_000_003 + CLASSES.index(label) * 100_003 + index) % 900_000_000 + 1


def make_pythia(label: str, seed: int):
    pythia8, _ = _import_generators()
    pythia = pythia8.Pythia("", False)
    for setting in [*COMMON_SETTINGS, f"Random:seed = {seed}", *PROCESSES[label]]:
        if not pythia.readString(setting):
            raise EdgemlError(f"Pythia8 rejected the setting '{setting}'; check the pythia8mc version (8.317)")
    if not pythia.init():
        raise EdgemlError(f"Pythia8 failed to initialise for class '{label}'")
    return pythia


def _direction(particle) -> tuple[float, float]:
    return particle.y(), particle.phi()


def _delta_r(a: tuple[float, float], b: tuple[float, float]) -> float:
    dphi = abs(a[1] - b[1])
    if dphi > math.pi:
        dphi = 2 * math.pi - dphi
    return math.hypot(a[0] - b[0], dphi)


def _decay_quarks(event, i: int) -> list:
    """Quarks from the decay of resonance ``i`` (following t -> W b -> q q' b), before showering."""
    quarks = []
    for d in event[event[i].iBotCopyId()].daughterList():
        if event[d].idAbs() in (23, 24):
            quarks.extend(_decay_quarks(event, d))
        elif event[d].isQuark():
            quarks.append(event[d])
    return quarks


def truth_objects(event, label: str) -> list[tuple[tuple[float, float], list[tuple[float, float]]]]:
    """(direction, decay-quark directions) of every object of class ``label`` in the hard process.

    q/g: outgoing hard-process partons (status 23) of the right flavour, no decay products.
    w/z/t: the boson or top (its last copy, after recoil) and its decay quarks.
    """
    objects = []
    for i in range(event.size()):
        prt = event[i]
        status = abs(prt.status())  # 23: outgoing of the hard process, 22: its intermediate resonances
        if status == 23 and ((label == "g" and prt.id() == 21) or (label == "q" and prt.idAbs() in LIGHT_QUARKS)):
            objects.append((_direction(prt), []))
        elif status == 22 and label in RESONANCE_ID and prt.idAbs() == RESONANCE_ID[label]:
            quarks = [_direction(q) for q in _decay_quarks(event, i)]
            objects.append((_direction(event[prt.iBotCopyId()]), quarks))
    return objects


def visible_final_state(event) -> np.ndarray:
    """Four-vectors ``(n, 4)`` of final-state particles a detector could see (no neutrinos)."""
    rows = []
    for i in range(event.size()):
        prt = event[i]
        if prt.isFinal() and prt.isVisible():
            rows.append((prt.px(), prt.py(), prt.pz(), prt.e()))
    return np.array(rows)


def cluster(particles: np.ndarray) -> list[tuple[tuple[float, float], float, np.ndarray]]:
    """Anti-kT R = 0.8 jets above the pT window's floor: (direction, pT, constituent indices)."""
    _, fastjet = _import_generators()
    pseudojets = []
    for k, (px, py, pz, e) in enumerate(particles):
        pj = fastjet.PseudoJet(float(px), float(py), float(pz), float(e))
        pj.set_user_index(k)
        pseudojets.append(pj)
    sequence = fastjet.ClusterSequence(pseudojets, fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R))
    jets = []
    for jet in sequence.inclusive_jets(JET_PT[0]):
        index = np.array([c.user_index() for c in jet.constituents()])
        jets.append(((jet.rap(), jet.phi_std()), jet.pt(), index))
    return jets


def matched_jets(event, label: str) -> list[np.ndarray]:
    """Constituent four-vectors of the jets matched to a class-``label`` object in this event."""
    objects = truth_objects(event, label)
    if not objects:
        return []
    particles = visible_final_state(event)
    jets = cluster(particles)
    out = []
    for direction, quarks in objects:
        best = min(jets, key=lambda j: _delta_r(j[0], direction), default=None)
        if best is None or _delta_r(best[0], direction) >= MATCH_R or best[1] > JET_PT[1]:
            continue
        if any(_delta_r(best[0], q) >= MATCH_R for q in quarks):
            continue  # a decay quark outside the jet: not a fully merged W/Z/top jet
        out.append(particles[best[2]])
    return out


def generate_chunk(task: tuple[str, int, int, int]) -> ChunkResult:
    """Generate ``n_jets`` jets of class ``label``: one task of the pool, seeded by its index."""
    label, index, n_jets, seed = task
    start = time.process_time()
    pythia = make_pythia(label, chunk_seed(seed, label, index))
    rows, events = [], 0
    while len(rows) < n_jets:
        if events >= MAX_EVENTS_PER_JET * n_jets + 100:
            raise EdgemlError(f"class '{label}': only {len(rows)} matched jets in {events} events; "
                              "the selection or Pythia settings are broken")
        events += 1
        if not pythia.next():
            continue
        for constituents in matched_jets(pythia.event, label):
            rows.append(feature_vector(constituents))
    X = np.array(rows[:n_jets], dtype=np.float64).reshape(-1, len(FEATURES))
    return ChunkResult(label, index, X, events, time.process_time() - start)


def plan_tasks(n_jets: int, seed: int, chunk: int = CHUNK_JETS) -> list[tuple[str, int, int, int]]:
    """Split ``n_jets`` into balanced classes (sizes differ by at most one) and chunks."""
    tasks = []
    for c, label in enumerate(CLASSES):
        n_class = n_jets // len(CLASSES) + (1 if c < n_jets % len(CLASSES) else 0)
        for index, start in enumerate(range(0, n_class, chunk)):
            tasks.append((label, index, min(chunk, n_class - start), seed))
    return tasks


def generate(n_jets: int, seed: int = 1, workers: int = 1, progress: bool | None = None,
             chunk: int = CHUNK_JETS) -> tuple[JetData, dict]:
    """Generate ``n_jets`` balanced jets; return them (rows shuffled) with the generation metadata.

    The result depends on ``n_jets``, ``seed`` and ``chunk`` only, not on ``workers``.
    """
    if n_jets < len(CLASSES):
        raise InputError(f"--n-jets {n_jets} is too small; ask for at least {len(CLASSES)} (one per class)")
    if workers < 1:
        raise InputError(f"--workers {workers} must be at least 1")
    _import_generators()
    tasks = plan_tasks(n_jets, seed, chunk)
    stats = GenerationStats()
    results: list[ChunkResult] = []
    wall = time.monotonic()
    with Progress(n_jets, "generate", enabled=progress) as bar:
        if workers == 1:
            stream = map(generate_chunk, tasks)
            results = _collect(stream, bar)
        else:
            # spawn: a clean interpreter per worker, no forked Pythia/TensorFlow state.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                results = _collect(pool.imap_unordered(generate_chunk, tasks), bar)
    stats.wall_seconds = time.monotonic() - wall
    results.sort(key=lambda r: (CLASSES.index(r.label), r.index))
    X = np.concatenate([r.X for r in results])
    y = np.concatenate([np.full(len(r.X), CLASSES.index(r.label)) for r in results])
    order = np.random.default_rng(seed).permutation(len(y))
    for r in results:
        stats.events[r.label] = stats.events.get(r.label, 0) + r.events
        stats.jets[r.label] = stats.jets.get(r.label, 0) + len(r.X)
        stats.cpu_seconds += r.seconds
    data = JetData(X[order].astype(np.float32), y[order].astype(np.int64), "pythia8")
    return data, metadata(n_jets, seed, workers, chunk, stats)


def _collect(stream, bar: Progress) -> list[ChunkResult]:
    results = []
    for result in stream:
        results.append(result)
        bar.update(len(result.X), f"{result.label} chunk {result.index}")
    return results


def metadata(n_jets: int, seed: int, workers: int, chunk: int, stats: GenerationStats) -> dict:
    pythia8, fastjet = _import_generators()
    import edgeml

    return {
        "generator": "edgeml.data.generate (Pythia8 + FastJet)",
        "n_jets": n_jets,
        "seed": seed,
        "chunk_jets": chunk,
        "workers": workers,
        "classes": CLASSES,
        "features": FEATURES,
        "pythia_common_settings": COMMON_SETTINGS,
        "pythia_class_settings": PROCESSES,
        "selection": {
            "particles": "final-state, visible (no neutrinos); no detector simulation, smearing or pile-up",
            "jets": f"anti-kT R = {JET_R}, {JET_PT[0]:.0f} < pT < {JET_PT[1]:.0f} GeV",
            "matching": f"Delta R(jet, parton or boson) < {MATCH_R}; W/Z/top also need every decay quark "
                        f"within Delta R < {MATCH_R} of the jet axis",
            "grooming": "mMDT beta = 0, z_cut = 0.1 on C/A reclustering (numpy, edgeml.data.features)",
        },
        "events_per_class": stats.events,
        "jets_per_class": stats.jets,
        "cpu_seconds": round(stats.cpu_seconds, 1),
        "wall_seconds": round(stats.wall_seconds, 1),
        "jets_per_cpu_second": round(n_jets / stats.cpu_seconds, 2) if stats.cpu_seconds else None,
        "events_per_cpu_second": (round(sum(stats.events.values()) / stats.cpu_seconds, 2)
                                  if stats.cpu_seconds else None),
        "versions": {
            "pythia8mc": _version("pythia8mc"),
            "fastjet": _version("fastjet"),
            "numpy": np.__version__,
            "edgeml": getattr(edgeml, "__version__", "unknown"),
            "python": platform.python_version(),
        },
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def write_sample(data: JetData, meta: dict, out: Path, force: bool = False) -> tuple[Path, Path]:
    """Write ``out`` (edgeml NPZ) and its metadata ``<stem>.json`` beside it, both atomically."""
    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise InputError(f"--out {out} must end in .npz (edgeml's jet layout)")
    meta_path = out.with_suffix(".json")
    existing = [p for p in (out, meta_path) if p.exists()]
    if existing and not force:
        raise InputError(f"{existing[0]} already exists; pass --force to overwrite it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(data, out)
    write_json(meta_path, meta)
    return out, meta_path
