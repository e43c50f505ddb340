"""`edgeml convert` wall time, and the emulator against the g++ C-simulation.

For the tutorial jet tagger (float at ap_fixed<16,6>: a freshly built, briefly trained
16-64-32-32-5 network, or --quick: 16-16-5) and the QKeras 6-bit pruned fixture, on 10,000
test jets of the default sample:

- engines: ``convert(engine='both')``: C-sim seconds (g++ compile + run) vs emulator seconds,
  jets/s of each, and how many jets the two engines give identical values in every layer;
- end to end: ``convert()`` wall time with ``engine='emulate'`` and with ``engine='csim'``
  (load, hls4ml conversion, Keras reference, report and estimate included);
- throughput: the emulator alone on 100,000 jets (the 10,000 repeated), best of 3;
- softmax settings for triggers (stable default, ``Implementation: argmax``, ``Skip: true``):
  decision agreement, output difference and the estimated cost;
- the cache-hit time;
- models that are not jet taggers (issue 25), each through ``convert(engine='both')`` on 10,000 events
  (--quick: 1,000): the QKeras MNIST CNN (28x28x1 -> 10, io_stream, Resource, RF 16; the shared copy
  when /work/shared/models is there, else the same architecture built here with seeded random weights)
  on synthetic images in [0, 1), and a dense autoencoder (57-32-16-32-57, built here) on standard-normal
  events: C-sim seconds (compile + run) vs emulator seconds, events/s of each, layers identical.

    python benchmarks/convert.py --out results.json [--quick] [--only-new]

Targets: the emulator >= 50x faster than C-sim with its compile, >= 1,000,000 jets/s (issue 13);
>= 20x for the CNN and the autoencoder on 10,000 events (issue 25).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
QKERAS_FIXTURE = ROOT / "tests" / "fixtures" / "keras224_qkeras_pruned.json"
SOFTMAX_SETTINGS = {"stable (default)": {}, "argmax": {"Implementation": "argmax"}, "skip": {"Skip": True}}


def train_float(out_dir: Path, quick: bool) -> Path:
    from edgeml import config
    from edgeml.train import train

    cfg = config.validate({"model": {"hidden": [16] if quick else [64, 32, 32]},
                           "train": {"epochs": 2 if quick else 10}})
    return train(cfg, out_dir, "float_tagger", progress=False).model


def timed_convert(model: Path, out: Path, n: int, **kwargs) -> tuple[dict, float]:
    from edgeml.convert import convert

    start = time.perf_counter()
    report = convert(model, output_dir=out, n=n, force=True, **kwargs)
    return report, time.perf_counter() - start


def engines(label: str, model: Path, tmp: Path, n: int) -> dict:
    both, _ = timed_convert(model, tmp / "both", n, engine="both")
    emulate_report, emulate_wall = timed_convert(model, tmp / "emulate", n, engine="emulate")
    csim_report, csim_wall = timed_convert(model, tmp / "csim", n, engine="csim")
    e, c = both["engines"]["emulate"], both["engines"]["csim"]
    split = {k: csim_report["timing"].get(k) for k in ("load", "convert", "compile", "csim", "keras", "report")}
    return {"model": label, "n": both["csim"]["n"], "engines": both["engines"],
            "emulate_vs_csim": both["emulate_vs_csim"],
            "engine_speedup": c["seconds"] / e["seconds"],
            "convert_wall_s": {"emulate": emulate_wall, "csim": csim_wall},
            "convert_speedup": csim_wall / emulate_wall,
            "csim_split_s": split,
            "argmax_agreement": both["csim"]["argmax_agreement"],
            "argmax_agreement_logits": both["csim"]["argmax_agreement_logits"],
            "bit_exact_logits": both["csim"]["bit_exact_logits"],
            "first_broken_layer": both["first_broken_layer"]}


def throughput(model_path: Path, tmp: Path, n_jets: int, n: int) -> dict:
    import numpy as np

    from edgeml import config
    from edgeml.firmware import build, emulate
    from edgeml.firmware.stage import comparison_data
    from edgeml.modelio import load_model

    cfg = config.defaults()
    model = load_model(model_path)
    X = comparison_data(model_path, model, None, n, cfg).arrays[0]
    X = np.resize(X, (n_jets, X.shape[1]))
    hls_model, _ = build(model, cfg["hls"], tmp / "throughput")
    out = {"n": n_jets}
    for trace in (False, True):
        best = min(_seconds(lambda: emulate(hls_model, X, trace=trace)) for _ in range(3))
        out["traced" if trace else "outputs_only"] = {"seconds": best, "jets_per_second": n_jets / best}
    return out


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def softmax_settings(label: str, model: Path, tmp: Path, n: int) -> list[dict]:
    from edgeml import config

    rows = []
    for name, layer in SOFTMAX_SETTINGS.items():
        cfg = config.validate({"hls": {"LayerName": {"softmax": layer}}} if layer else {})
        report, _ = timed_convert(model, tmp / f"sm-{len(rows)}", n, config=cfg, engine="emulate")
        c, est = report["csim"], (report.get("estimate") or {}).get("total", {})
        rows.append({"model": label, "softmax": name, "accuracy": c["accuracy_csim"],
                     "argmax_agreement": c["argmax_agreement"],
                     "argmax_agreement_logits": c["argmax_agreement_logits"],
                     "max_abs_diff": c["max_abs_diff"], "softmax_ties": c["softmax_ties"],
                     "estimate": {k: est.get(k) for k in ("lut", "ff", "dsp", "bram_18k", "latency_max", "ii")}})
    return rows


def mnist_cnn(out_dir: Path) -> Path:
    """The shared QKeras MNIST CNN (JSON + weights), or the same architecture with seeded random weights."""
    from edgeml.paths import shared_dir

    shared = shared_dir()
    if shared is not None and (shared / "models" / "qkeras_mnist_cnn.json").is_file():
        return shared / "models" / "qkeras_mnist_cnn.json"
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense
    from qkeras.quantizers import quantized_bits, quantized_relu

    from edgeml.modelio import save_model

    tf.keras.utils.set_random_seed(7)
    q = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
    model = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(28, 28, 1), name="input_1"),
        QConv2D(16, 3, activation="relu", name="q_conv2d", **q), QActivation(quantized_relu(6), name="q_activation"),
        tf.keras.layers.MaxPooling2D(2, name="max_pooling2d"),
        QConv2D(16, 3, activation="relu", name="q_conv2d_1", **q),
        QActivation(quantized_relu(6), name="q_activation_1"), tf.keras.layers.MaxPooling2D(2, name="max_pooling2d_1"),
        tf.keras.layers.Flatten(name="flatten"), QDense(10, name="q_dense", **q),
        tf.keras.layers.Activation("softmax", name="softmax")])
    return save_model(model, out_dir / "qkeras_mnist_cnn.h5")


def dense_autoencoder(out_dir: Path, n: int) -> tuple[Path, Path]:
    """A float 57-32-16-32-57 autoencoder (the shape of anomaly-detection triggers) and n standard-normal events."""
    import numpy as np
    import tensorflow as tf

    from edgeml.modelio import save_model

    tf.keras.utils.set_random_seed(8)
    model = tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(57,), name="x")] + [
        tf.keras.layers.Dense(width, activation="relu", name=f"fc{i}") for i, width in enumerate((32, 16, 32))] + [
        tf.keras.layers.Dense(57, name="reco")])
    data = out_dir / "ae_events.npz"
    np.savez(data, X=np.random.default_rng(8).normal(size=(n, 57)).astype(np.float32))
    return save_model(model, out_dir / "dense_autoencoder.h5"), data


def other_designs(tmp: Path, n: int) -> list[dict]:
    """The CNN and the autoencoder through ``convert(engine='both')``: emulator vs C-sim end to end."""
    from edgeml import config

    cnn = mnist_cnn(tmp)
    ae, ae_data = dense_autoencoder(tmp, n)
    stream = config.validate({"hls": {"IOType": "io_stream", "Strategy": "Resource", "ReuseFactor": 16}})
    designs = [("MNIST CNN 28x28x1 (QKeras 6-bit), io_stream, Resource, RF 16", cnn, stream,
                {"data": "synthetic", "input_range": "0,1"}),
               ("dense autoencoder 57-32-16-32-57 (float <16,6>), io_parallel", ae, None, {"data": ae_data})]
    rows = []
    for i, (label, model, cfg, data) in enumerate(designs):
        report, wall = timed_convert(model, tmp / f"other{i}", n, config=cfg, engine="both", **data)
        e, c = report["engines"].get("emulate"), report["engines"]["csim"]
        x = report.get("emulate_vs_csim")
        rows.append({"model": label, "source": str(model), "n": report["csim"]["n"], "task": report["csim"]["task"],
                     "data": report["data"], "engines": report["engines"], "engine_note": report["engine_note"],
                     "engine_speedup": c["seconds"] / e["seconds"] if e else None,
                     "csim_compile_s": report["timing"].get("compile"), "csim_run_s": report["timing"].get("csim"),
                     "emulate_vs_csim": x, "convert_wall_s": wall,
                     "score_spearman": report["csim"].get("score", {}).get("spearman"),
                     "argmax_agreement_logits": report["csim"].get("argmax_agreement_logits"),
                     "estimate": (report.get("estimate") or {}).get("total") or report.get("estimate")})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--quick", action="store_true", help="small network and 1000 jets")
    parser.add_argument("--only-new", action="store_true", help="only the CNN and the autoencoder (issue 25)")
    args = parser.parse_args(argv)
    from edgeml.convert import convert

    n = 1000 if args.quick else 10000
    results = {"quick": args.quick, "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "load_average_start": os.getloadavg(), "runs": [], "softmax": []}
    with tempfile.TemporaryDirectory(prefix="edgeml-bench-convert-") as tmp:
        tmp = Path(tmp)
        results["other_designs"] = other_designs(tmp, n)
        if not args.only_new:
            float_model = train_float(tmp / "models", args.quick)
            models = {"float <16,6>": float_model, "qkeras 6-bit pruned (fixture)": QKERAS_FIXTURE}
            for i, (label, model) in enumerate(models.items()):
                results["runs"].append(engines(label, model, tmp / f"m{i}", n))
                results["softmax"] += softmax_settings(label, model, tmp / f"m{i}", n)
            results["throughput"] = throughput(float_model, tmp, 10 * n, n)
            start = time.perf_counter()
            cached = convert(QKERAS_FIXTURE, output_dir=tmp / "m1" / "emulate", n=n, engine="emulate")
            results["cache_hit_s"] = time.perf_counter() - start
            results["cache_hit"] = cached["cache"]["hit"]
    results["load_average_end"] = os.getloadavg()  # a shared machine: read the seconds with the load
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for run in results["runs"]:
        e, c = run["engines"]["emulate"], run["engines"]["csim"]
        x = run["emulate_vs_csim"]
        print(f"{run['model']}: C-sim {c['seconds']:.2f}s (compile {run['csim_split_s']['compile']:.2f}s) vs "
              f"emulator {e['seconds'] * 1000:.1f} ms: {run['engine_speedup']:.0f}x; identical "
              f"{x['identical_fraction']:.2%} of {x['n']}; convert() {run['convert_wall_s']['csim']:.1f}s -> "
              f"{run['convert_wall_s']['emulate']:.1f}s ({run['convert_speedup']:.1f}x)")
    if "throughput" in results:
        t = results["throughput"]
        print(f"emulator on {t['n']:,} jets: {t['outputs_only']['jets_per_second']:,.0f} jets/s "
              f"(traced: {t['traced']['jets_per_second']:,.0f})")
    for row in results["softmax"]:
        print(f"{row['model']} softmax {row['softmax']}: agreement {row['argmax_agreement']:.4f} "
              f"(pre-softmax {row['argmax_agreement_logits']:.4f}), LUT {row['estimate']['lut']}, "
              f"latency {row['estimate']['latency_max']}")
    if "cache_hit_s" in results:
        print(f"cache hit: {results['cache_hit_s'] * 1000:.0f} ms")
    for row in results["other_designs"]:
        e, c, x = row["engines"].get("emulate"), row["engines"]["csim"], row["emulate_vs_csim"]
        if e is None:
            print(f"{row['model']}: C-sim only ({row['engine_note']}): {c['seconds']:.1f}s")
            continue
        print(f"{row['model']} on {row['n']:,} events: C-sim {c['seconds']:.1f}s "
              f"(compile {row['csim_compile_s']:.1f}s, "
              f"{c['jets_per_second']:,.0f} events/s) vs emulator {e['seconds']:.2f}s ({e['jets_per_second']:,.0f} "
              f"events/s): {row['engine_speedup']:.1f}x; identical {x['identical_fraction']:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
