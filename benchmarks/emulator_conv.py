"""The emulator against hls4ml's g++ C-simulation on image CNNs in io_stream (issue 25).

For the public example CNNs in shared/models/ (qkeras_mnist_cnn: 28x28x1 -> QConv2D x2 + pooling +
QDense + softmax; KERAS_conv2d_model: 8x8x1; KERAS_conv1d_small: 10x4), converted with hls4ml's
per-layer default config (ap_fixed<16,6> where QKeras gives no type, Latency) in io_stream:

- C-sim: g++ compile + traced run over N random images (uniform in [0, 1), the scale of MNIST pixels);
- emulator: building it from the hls4ml model + its traced run over the same images (what ``edgeml
  convert`` does), then an untraced run (outputs only), each repeated (``--repeats``, the median reported);
- the comparison ``edgeml convert --engine both`` makes (``fidelity.engine_agreement``: events identical in
  every layer trace and output, per layer), timed on its own (``compare_s``), events/s of each engine, the
  CPU seconds of the emulator (both cores) next to its wall time (on a shared machine wall time includes
  waiting for a core) and the load average before and after each model.

The emulator keeps a layer's trace as the integers of its fixed-point type in the narrowest integer dtype
(28x28 CNN: ~93 kB per event, 0.9 GB for 10,000 images; the C-simulation returns 3.3 GB of doubles), in
4 kB pages: NumPy's transparent huge pages cost this VM several times more CPU to fault in.

    python benchmarks/emulator_conv.py --out results.json [--quick] [--io-type io_parallel]

Target: the emulator >= 20x faster than C-sim end to end (compile included) on 10,000 events of a
28x28 image CNN in io_stream.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ["qkeras_mnist_cnn", "KERAS_conv2d_model", "KERAS_conv1d_small"]


def hls_model_of(name: str, out_dir: Path, io_type: str):
    import hls4ml

    from edgeml.modelio import load_model
    from edgeml.paths import shared_dir
    from edgeml.simulate import quiet

    model = load_model(shared_dir() / "models" / f"{name}.json")
    with quiet():
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis",
                                                   default_precision="ap_fixed<16,6>")
        hls_model = hls4ml.converters.convert_from_keras_model(model, hls_config=cfg, output_dir=str(out_dir),
                                                               backend="Vitis", io_type=io_type)
    return model, hls_model


def measure(name: str, tmp: Path, n: int, io_type: str, repeats: int) -> dict:
    import numpy as np

    from edgeml.firmware.emulator import Emulator
    from edgeml.firmware.fidelity import engine_agreement
    from edgeml.simulate import compile_model, run

    model, hls_model = hls_model_of(name, tmp / name, io_type)
    X = np.random.default_rng(0).uniform(0, 1, (n, int(np.prod(model.input_shape[1:]))))
    load_before = os.getloadavg()
    start = time.perf_counter()
    compile_model(hls_model)
    compiled = time.perf_counter()
    y, traces = run(hls_model, X)
    csim_done = time.perf_counter()
    traced, untraced, agreement, compare_s, outputs_identical = [], [], None, None, True
    for _ in range(repeats):  # emulator runs are cheap: repeated, to show the spread on a shared machine
        seconds, cpu, result = _timed(lambda: Emulator(hls_model).run(X))  # build + traced run, as convert does
        traced.append({"seconds": seconds, "cpu_s": cpu})
        if agreement is None:  # the comparison edgeml convert --engine both makes, in every layer
            t = time.perf_counter()
            agreement = engine_agreement([result.outputs], result.traces, [y], traces)
            compare_s = time.perf_counter() - t
        del result
        seconds, cpu, result = _timed(lambda: Emulator(hls_model).run(X, trace=False))
        untraced.append({"seconds": seconds, "cpu_s": cpu})
        outputs_identical &= bool(np.array_equal(result.outputs, y))
        del result
    csim_s = csim_done - start
    emulator, emulator_untraced = _summary(traced, n), _summary(untraced, n)
    return {"model": name, "io_type": io_type, "n": n, "layers_traced": len(traces_of(hls_model)),
            "load_average": {"before": load_before, "after": os.getloadavg()},  # 1, 5, 15 min
            "csim": {"compile_s": compiled - start, "run_s": csim_done - compiled, "seconds": csim_s,
                     "events_per_second": n / (csim_done - compiled)},
            "emulator": emulator, "emulator_untraced": emulator_untraced,
            "speedup_end_to_end": csim_s / emulator["seconds"], "speedup_untraced": csim_s / emulator_untraced["seconds"],
            "compare_s": compare_s, "emulate_vs_csim": agreement,
            "identical_in_every_layer": agreement["identical_fraction"] == 1.0 and outputs_identical}


def _timed(work) -> tuple[float, float, object]:
    """Wall and CPU seconds (all threads) of ``work()``, and its result."""
    start, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - start, time.process_time() - cpu, result


def _summary(runs: list[dict], n: int) -> dict:
    """The median run (wall time) of the repeats, with every run's wall and CPU seconds."""
    middle = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {"seconds": middle["seconds"], "cpu_s": middle["cpu_s"], "events_per_second": n / middle["seconds"],
            "runs": runs}


def traces_of(hls_model) -> list[str]:
    return [layer.name for layer in hls_model.get_layers() if layer.get_attr("trace", False)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="1,000 events and the MNIST CNN only")
    parser.add_argument("--io-type", default="io_stream", choices=["io_stream", "io_parallel"])
    parser.add_argument("--repeats", type=int, default=3, help="emulator runs per model (the median is reported)")
    args = parser.parse_args()
    from edgeml.paths import shared_dir

    if shared_dir() is None:
        raise SystemExit("shared/models/ is not present: nothing to measure")
    n = 1000 if args.quick else 10_000
    load_before = os.getloadavg()  # 2 cores shared with other jobs: wall times include waiting for a core
    with tempfile.TemporaryDirectory() as tmp:
        models = MODELS[:1] if args.quick else MODELS
        rows = [measure(name, Path(tmp), n, args.io_type, args.repeats) for name in models]
    for r in rows:
        print(f"{r['model']} ({r['io_type']}, {r['n']:,} events): C-sim {r['csim']['compile_s']:.1f} s compile + "
              f"{r['csim']['run_s']:.1f} s run ({r['csim']['events_per_second']:,.0f} ev/s); emulator "
              f"{r['emulator']['seconds']:.2f} s traced ({r['emulator']['events_per_second']:,.0f} ev/s, "
              f"{r['emulator']['cpu_s']:.1f} CPU s): {r['speedup_end_to_end']:.1f}x; untraced "
              f"{r['emulator_untraced']['seconds']:.2f} s ({r['emulator_untraced']['events_per_second']:,.0f} ev/s, "
              f"{r['emulator_untraced']['cpu_s']:.1f} CPU s): {r['speedup_untraced']:.1f}x; "
              f"identical in every layer: {r['identical_in_every_layer']}; load {r['load_average']['before'][0]:.1f}"
              f"-{r['load_average']['after'][0]:.1f}")
    if args.out:
        load = {"before": load_before, "after": os.getloadavg()}  # 1, 5, 15 min load averages
        args.out.write_text(json.dumps({"machine": platform.node(), "cpus": os.cpu_count(), "load_average": load,
                                        "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
