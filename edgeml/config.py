"""YAML configuration: one declarative schema, validated on load.

The schema is the single source of truth: defaults, types, ranges, allowed values
and the documentation in ``docs/config.md`` (``python -m edgeml.config`` rewrites
it) all come from ``SCHEMA``. Keys of the ``hls`` section keep hls4ml's own names
(Precision, ReuseFactor, Strategy, IOType, Part, ClockPeriod) so hls4ml users feel
at home.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from edgeml.errors import ConfigError

_MISSING = object()


@dataclass(frozen=True)
class Key:
    """One configuration value: its type, default, limits and one-line documentation."""

    type: type | tuple[type, ...]
    default: Any
    doc: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    item_type: type | None = None  # element type for list values
    check: Callable[[str, Any], None] | None = None  # extra validation; raises ConfigError


@dataclass(frozen=True)
class Section:
    doc: str
    keys: dict[str, "Key | Section | Mapping"]
    optional: bool = False  # absent from the file: null (the feature is off); present: filled with defaults


@dataclass(frozen=True)
class Mapping:
    """Free-form names (layer names, recipe names) mapping to a validated value."""

    doc: str
    value: "Key | Section"
    default: dict = field(default_factory=dict)


_FIXED = re.compile(r"^\s*(ap_fixed|ap_ufixed)\s*<\s*(\d+)\s*,\s*(-?\d+)\s*(,\s*AP_\w+\s*){0,3}>\s*$")
_INT = re.compile(r"^\s*(ap_int|ap_uint)\s*<\s*(\d+)\s*>\s*$")
PRECISION_KINDS = ("weight", "bias", "result", "accum")
# Softmax lookup-table types, settable per layer (edgeml applies them: hls4ml 1.3 ignores them in the config).
TABLE_KINDS = ("exp_table", "inv_table", "inv_inp", "inp_norm")
# hls4ml's strategy names; distributed_arithmetic (da4ml) only at ReuseFactor 1 with io_parallel.
STRATEGIES = ("Latency", "Resource", "distributed_arithmetic")
DA = "distributed_arithmetic"


def parse_precision(text: str) -> tuple[bool, int, int]:
    """``'ap_fixed<16,6>'`` -> (signed, total bits, integer bits); raises ValueError if malformed."""
    m = _FIXED.match(text)
    if m:
        width, integer = int(m.group(2)), int(m.group(3))
        if not 1 <= width <= 1024:
            raise ValueError(f"width {width} is outside 1..1024")
        return m.group(1) == "ap_fixed", width, integer
    m = _INT.match(text)
    if m:
        width = int(m.group(2))
        if not 1 <= width <= 1024:
            raise ValueError(f"width {width} is outside 1..1024")
        return m.group(1) == "ap_int", width, width
    raise ValueError("expected ap_fixed<W,I>, ap_ufixed<W,I>, ap_int<W> or ap_uint<W> (optionally with AP_RND/AP_SAT modes)")


def check_precision(where: str, value: Any) -> None:
    """A precision is a type string or a dict {weight, bias, result, accum} of type strings."""
    if isinstance(value, str):
        try:
            parse_precision(value)
        except ValueError as e:
            raise ConfigError(f"config error: {where} = {value!r} is not a valid precision: {e}") from None
        return
    if isinstance(value, dict):
        for kind, text in value.items():
            if kind not in PRECISION_KINDS + TABLE_KINDS:
                raise ConfigError(
                    f"config error: unknown key '{where}.{kind}' (allowed: {', '.join(PRECISION_KINDS + TABLE_KINDS)})"
                )
            check_precision(f"{where}.{kind}", text)
        return
    raise ConfigError(
        f"config error: {where} = {value!r} must be a precision string like 'ap_fixed<16,6>' "
        f"or a mapping of {', '.join(PRECISION_KINDS)} to such strings"
    )


_LAYER_HLS = Section(
    "Per-layer hls4ml overrides, keyed by Keras layer name.",
    {
        "Precision": Key((str, dict), None, "Layer precision: a type string or {weight, bias, result, accum}.",
                         nullable=True, check=check_precision),
        "ReuseFactor": Key(int, None, "Layer reuse factor.", min=1, max=4096, nullable=True),
        "Strategy": Key(str, None, "Layer strategy (distributed_arithmetic: ReuseFactor 1, io_parallel only).",
                        choices=STRATEGIES, nullable=True),
        "TableSize": Key(int, None, "Lookup-table entries of an activation/softmax layer (hls4ml default 1024).",
                         min=64, max=65536, nullable=True),
        "Implementation": Key(str, None, "Softmax implementation (hls4ml default stable); `argmax` outputs the "
                              "one-hot decision with no tables (docs/convert.md).",
                              choices=("latency", "stable", "argmax", "legacy"), nullable=True),
        "Skip": Key(bool, None, "Drop this softmax from the firmware: the outputs are the logits, the "
                    "decision is their argmax (docs/convert.md).", nullable=True),
    },
)

HLS_SECTION = Section(
    "hls4ml conversion settings, with hls4ml's own key names.",
    {
        "Backend": Key(str, "Vitis", "hls4ml backend.", choices=("Vitis", "Vivado")),
        "Part": Key(str, "xcu250-figd2104-2L-e", "FPGA part number."),
        "ClockPeriod": Key((int, float), 5.0, "Target clock period in ns.", min=0.5, max=100.0),
        "IOType": Key(str, "io_parallel", "Interface between layers.", choices=("io_parallel", "io_stream")),
        "Precision": Key((str, dict), "ap_fixed<16,6>",
                         "Model-wide default precision (ignored where QKeras quantizers set it).",
                         check=check_precision),
        "ReuseFactor": Key(int, 1, "Model-wide reuse factor: multiplications shared per multiplier.", min=1, max=4096),
        "Strategy": Key(str, "Latency", "Model-wide strategy. `distributed_arithmetic` (hls4ml 1.3 with da4ml) turns "
                        "every Dense/Conv constant matrix-vector product into a DSP-free adder graph; it needs "
                        "ReuseFactor 1 and io_parallel.", choices=STRATEGIES),
        "LayerName": Mapping("Per-layer overrides keyed by layer name.", _LAYER_HLS),
    },
)

_QUANT_LAYER = Section(
    "Per-layer bit widths keyed by Dense layer name (fc1, fc2, ..., output); null keys inherit the model-wide value.",
    {
        "bits": Key(int, None, "Total bits of the layer's kernel and bias.", min=2, max=16, nullable=True),
        "integer": Key(int, None, "Integer bits (sign excluded) of kernel and bias.", min=0, max=8, nullable=True),
        "activation_bits": Key(int, None, "Total bits of the ReLU after this layer.", min=2, max=16, nullable=True),
        "activation_integer": Key(int, None, "Integer bits of the ReLU after this layer.", min=0, max=8,
                                  nullable=True),
    },
)

COMPRESSION_SECTION = Section(
    "Compression: the recipes a run executes, or (in a recipe file) the recipe itself. A recipe file is an "
    "ordinary config; only its compression section is used when another config lists it. See docs/compression.md.",
    {
        "recipes": Key(list, [], "Recipes run after the baseline: names of YAML files in ./configs/ (with or without "
                       ".yaml) or paths relative to the working directory. Empty: this config's own compression "
                       "section is the recipe for `edgeml compress`.", item_type=str),
        "name": Key(str, None, "Recipe name (file stem of its artifacts); null: the recipe file's stem.",
                    nullable=True),
        "start": Key(str, "baseline", "'baseline': start from the float baseline's weights (same widths only); "
                     "'scratch': fresh random weights.", choices=("baseline", "scratch")),
        "epochs": Key(int, 30, "Training (fine-tuning) epochs of the compressed model.", min=1, max=10000),
        "learning_rate": Key(float, None, "Adam learning rate; null: train.learning_rate.", min=1e-7, max=1.0,
                             nullable=True),
        "student": Section("The compressed model's architecture.", {
            "hidden": Key(list, None, "Hidden Dense widths; null: model.hidden.", item_type=int, nullable=True),
        }),
        "prune": Section("tfmot magnitude pruning of every Dense layer's kernel.", {
            "sparsity": Key(float, 0.0, "Target fraction of zero kernel weights per layer (0 disables pruning).",
                            min=0.0, max=0.99),
            "per_layer": Mapping("Per-layer target sparsity keyed by Dense layer name (0: leave unpruned).",
                                 Key(float, 0.0, "Target sparsity of this layer.", min=0.0, max=0.99)),
            "schedule": Key(str, "polynomial", "'polynomial' (PolynomialDecay ramp from 0 to the target between "
                            "begin_epoch and end_epoch) or 'constant' (ConstantSparsity from begin_epoch).",
                            choices=("polynomial", "constant")),
            "begin_epoch": Key(int, 0, "Epoch at which pruning starts.", min=0),
            "end_epoch": Key(int, None, "Epoch by which the target is reached (polynomial); null: half the epochs. "
                             "Early stopping only considers epochs after it.", min=1, nullable=True),
            "frequency": Key(int, 100, "Training steps between mask updates (capped at one epoch's steps).", min=1),
        }),
        "quantize": Section("QKeras quantization-aware training (QDense + QActivation, bit-exact in hls4ml).", {
            "enabled": Key(bool, False, "Build the QKeras model instead of a float one."),
            "bits": Key(int, 6, "Kernel and bias bits: quantized_bits(bits, integer, alpha=1).", min=2, max=16),
            "integer": Key(int, 0, "Kernel and bias integer bits (sign excluded).", min=0, max=8),
            "activation_bits": Key(int, None, "ReLU bits: quantized_relu(bits, integer); null: bits.", min=2,
                                   max=16, nullable=True),
            "activation_integer": Key(int, None, "ReLU integer bits; null: integer.", min=0, max=8, nullable=True),
            "per_layer": Mapping("Per-layer overrides keyed by Dense layer name.", _QUANT_LAYER),
        }),
        "kind": Key(str, "keras", "'keras': the tfmot pruning / QKeras quantization / distillation passes below; "
                    "'hgq': HGQ, every weight and activation learns its own bit width under a resource penalty "
                    "(the hgq section; prune and quantize must stay off).", choices=("keras", "hgq")),
        "hgq": Section("HGQ (hgq 0.2.6) training when kind is 'hgq': HQuantize input, HDense (or HDenseBatchNorm) "
                       "layers, bit widths trained beside the weights with loss + beta*EBOPs + l1*bits. One "
                       "training keeps every snapshot on its (validation accuracy, EBOPs) front. See "
                       "docs/compression.md.", {
            "batch_size": Key(int, 2048, "Mini-batch size.", min=1, max=1 << 20),
            "batch_norm": Key(bool, False, "HDenseBatchNorm (batch norm fused into the quantized kernel) instead "
                              "of HDense for the hidden layers."),
            "input_bits": Key(float, 2.0, "Initial fractional bits of the HQuantize input quantizer (HGQ init_bw).",
                              min=-8.0, max=16.0),
            "weight_bits": Key(float, 2.0, "Initial bits of every kernel weight (HGQ init_bw, adapted to each "
                               "weight's magnitude).", min=-8.0, max=16.0),
            "activation_bits": Key(float, 2.0, "Initial fractional bits of every layer's output quantizer.",
                                   min=-8.0, max=16.0),
            "bits_l1": Key(float, 2e-6, "L1 penalty on every bit-width variable (HGQ MonoL1).", min=0.0, max=1.0),
            "overflow": Key(str, "WRAP", "Overflow mode of the exported proxy model: WRAP (HGQ's aggressive "
                            "default: ranges are calibrated on the training jets) or SAT.", choices=("WRAP", "SAT")),
            "beta": Section("The EBOPs penalty beta, ramped over the training: each epoch is one point of the "
                            "accuracy/EBOPs trade-off.", {
                "start": Key(float, 5e-7, "beta of the first epoch.", min=0.0, max=1.0),
                "end": Key(float, 1e-4, "beta at the end of the ramp (at least start).", min=0.0, max=1.0),
                "interpolation": Key(str, "log", "Ramp shape: log (geometric) or linear.", choices=("log", "linear")),
                "epochs": Key(int, None, "Epochs of the ramp (beta stays at end afterwards); null: all epochs.",
                              min=1, max=100000, nullable=True),
            }),
            "restarts": Key(int, 1, "Trainings of the recipe from different seeds (the run's seed, +1, ...), their "
                            "snapshots on one front: HGQ's front moves by a few hundred EBOPs at equal accuracy "
                            "from seed to seed, so N restarts cost N trainings and keep the best of each.",
                            min=1, max=64),
            "workers": Key(int, None, "Restarts trained at a time, each in its own process with one TensorFlow "
                           "thread; null: one per core. 1 trains them one after another in this process.",
                           min=1, max=64, nullable=True),
            "choose_within": Key(float, 0.005, "The recipe's model is the snapshot with the fewest EBOPs whose "
                                 "validation accuracy is within this of the best snapshot's.", min=0.0, max=1.0),
            "fine_tune": Section("After the ramp, train some front snapshots further with every bit width frozen "
                                 "(beta held at the snapshot's): the weights recover accuracy that the penalty "
                                 "took, at the same bits. Each fine-tuned epoch joins the front.", {
                "epochs": Key(int, 0, "Epochs per fine-tuned snapshot; 0: no fine-tuning.", min=0, max=10000),
                "snapshots": Key(int, 8, "Snapshots fine-tuned per training, among those whose validation "
                                 "accuracy is at least min_val_accuracy (which ones: select).", min=1, max=1000),
                "select": Key(str, "cheapest", "Which snapshots: 'cheapest' (fewest EBOPs: the cheap end of the "
                              "front) or 'spread' (evenly along the front above the floor, its cheapest and most "
                              "accurate included: every accuracy level).", choices=("cheapest", "spread")),
                "min_val_accuracy": Key(float, 0.0, "Fine-tune only snapshots at least this accurate on the "
                                        "validation jets (the operating region of the front).", min=0.0, max=1.0),
                "learning_rate": Key(float, None, "Adam learning rate of the fine-tuning; null: a third of the "
                                     "recipe's.", min=1e-7, max=1.0, nullable=True),
            }),
        }),
        "distill": Section("Knowledge distillation: loss = alpha*CE(y, s) + (1-alpha)*T^2*KL(teacher || student).", {
            "enabled": Key(bool, False, "Train with the teacher's softened logits."),
            "alpha": Key(float, 0.1, "Weight of the hard-label cross-entropy.", min=0.0, max=1.0),
            "temperature": Key(float, 4.0, "Softmax temperature T.", min=0.1, max=100.0),
            "teacher_hidden": Key(list, None, "Hidden widths of a larger float teacher trained with the train "
                                  "section; null: the float baseline is the teacher.", item_type=int, nullable=True),
        }),
    },
)

def _check_range(where: str, value: Any) -> None:
    """A [low, high] pair of numbers with low <= high (the search space's ranges)."""
    if (len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
            or value[0] > value[1]):
        raise ConfigError(f"config error: {where} = {value!r} must be a range [low, high] of two numbers with "
                          "low <= high")


def _check_choices(where: str, value: Any) -> None:
    if not value:
        raise ConfigError(f"config error: {where} is empty: the search needs at least one value to try")


def _choices_of(allowed: tuple) -> Any:
    def check(where: str, value: Any) -> None:
        _check_choices(where, value)
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ConfigError(f"config error: {where} holds {bad[0]!r} (allowed: {', '.join(allowed)})")

    return check


_check_strategies = _choices_of(("Latency", "Resource"))


def _range(default: list, doc: str, lo: float, hi: float, integer: bool = True) -> Key:
    def check(where: str, value: Any) -> None:
        _check_range(where, value)
        if integer and any(not isinstance(v, int) for v in value):
            raise ConfigError(f"config error: {where} = {value!r} must hold whole numbers")
        if value[0] < lo or value[1] > hi:
            raise ConfigError(f"config error: {where} = {value!r} must lie within [{lo}, {hi}]")

    return Key(list, default, f"{doc} Range [low, high] within [{lo}, {hi}].", check=check)


SEARCH_SECTION = Section(
    "`edgeml search` (and the optional `search` stage of `edgeml run`, which runs only when the config has this "
    "section (`search: {}` for all defaults): Optuna proposes, Ray Tune runs the trials. See docs/search.md.",
    {
        "trials": Key(int, 48, "Number of trials (--trials overrides).", min=1, max=100000),
        "workers": Key(int, None, "Trials at once on a local Ray (--workers); null: one per core. When the "
                       "workers fill every core, each trial worker is pinned to a core of its own.", min=1,
                       max=1024, nullable=True),
        "epochs": Key(int, 20, "Training epochs of each qkeras trial (--epochs sets both kinds; also the "
                      "teacher's).", min=1, max=10000),
        "hgq_epochs": Key(int, 200, "Training epochs of each hgq trial (--epochs sets both kinds): the length of "
                          "its beta ramp. HGQ needs a long ramp (its own jet recipe trains 800); a short one leaves "
                          "the bits unlearned.", min=1, max=10000),
        "sampler": Key(str, "tpe", "Optuna multi-objective sampler, seeded with `seed`; `random` proposes the same "
                       "points whatever the results (a baseline, and a fair 1- vs N-worker comparison).",
                       choices=("tpe", "nsga2", "random")),
        "objective": Key(str, "lut_dsp", "Cost to minimise beside validation accuracy: LUT + 55*DSP, latency "
                         "(ns) or BOPs.", choices=("lut_dsp", "latency", "bops")),
        "max_failures": Key(int, 1, "Retries of a trial whose worker died or raised.", min=0, max=10),
        "budget": Section("What a trial must fit; a trial over budget is infeasible and never on the front.", {
            "Part": Key(str, "xcu250-figd2104-2L-e", "FPGA part the percentages refer to."),
            "ClockPeriod": Key((int, float), 5.0, "Clock period in ns.", min=0.5, max=100.0),
            "max_lut_pct": Key(float, 5.0, "Maximum LUTs, % of the part.", min=0.0, max=100.0),
            "max_dsp_pct": Key(float, 5.0, "Maximum DSPs, % of the part.", min=0.0, max=100.0),
            "max_ff_pct": Key(float, 5.0, "Maximum flip-flops, % of the part.", min=0.0, max=100.0),
            "max_bram_pct": Key(float, 5.0, "Maximum BRAM, % of the part.", min=0.0, max=100.0),
            "max_latency_ns": Key(float, 100.0, "Maximum latency in ns.", min=0.0, nullable=True),
            "max_ii": Key(int, 5, "Maximum initiation interval in clocks (5 at 5 ns: a new event every 25 ns).",
                          min=1, nullable=True),
        }),
        "space": Section("What Optuna may choose; defaults search around the hls4ml tutorial tagger.", {
            "hidden_layers": _range([1, 4], "Number of hidden Dense layers.", 1, 8),
            "widths": Key(list, [8, 16, 24, 32, 48, 64], "Widths a hidden layer may take.", item_type=int,
                          check=_check_choices),
            "weight_bits": _range([2, 16], "Per-layer QKeras quantized_bits width of kernel and bias.", 2, 16),
            "activation_bits": _range([2, 16], "Per-layer quantized_relu width.", 2, 16),
            "input_bits": _range([6, 16], "Width of the network input ap_fixed<W, input_integer>.", 2, 32),
            "input_integer": Key(int, 4, "Integer bits (sign included) of the network input; the scaled features "
                                 "mostly lie within +-4 standard deviations.", min=1, max=16),
            "sparsity": _range([0.0, 0.95], "tfmot target sparsity of every Dense kernel.", 0.0, 0.95,
                               integer=False),
            "distill": Key(list, [False, True], "Distillation choices (the teacher is the run's float baseline).",
                           item_type=bool, check=_check_choices),
            "ReuseFactor": Key(list, [1, 2, 4], "Model-wide reuse factors.", item_type=int, check=_check_choices),
            "Strategy": Key(list, ["Latency", "Resource"], "Model-wide strategies (Latency, Resource).", item_type=str,
                            check=_check_strategies),
            "learning_rate": _range([0.001, 0.01], "Adam learning rate (log-uniform).", 1e-5, 1.0, integer=False),
            "method": Key(list, ["qkeras", "hgq"], "Quantization methods a trial may use: qkeras (the bits, sparsity "
                          "and Strategy above) or hgq (HGQ learns a bit width per weight and activation; one "
                          "training gives every snapshot on its accuracy/EBOPs front as a candidate design).",
                          item_type=str, check=_choices_of(("qkeras", "hgq"))),
            "hgq_beta_start": _range([1e-7, 1e-5], "HGQ trials: EBOPs penalty beta of the first epoch (log-uniform).",
                                     1e-10, 1.0, integer=False),
            "hgq_beta_end": _range([1e-5, 1e-3], "HGQ trials: beta at the last epoch (log-uniform; the ramp is "
                                   "geometric).", 1e-10, 1.0, integer=False),
            "hgq_init_bits": _range([2, 6], "HGQ trials: initial bits of every weight and activation.", 0, 16),
            "hgq_Strategy": Key(list, ["Latency", DA], f"HGQ trials' strategies: Latency or {DA} (da4ml; "
                                "ReuseFactor 1, io_parallel).", item_type=str,
                                check=_choices_of(("Latency", "Resource", DA))),
        }),
    },
    optional=True,
)


SCHEMA = Section(
    "An edgeml run configuration.",
    {
        "name": Key(str, "default", "Run name: the run directory is runs/<name>/ unless --run-dir is given."),
        "seed": Key(int, 42, "Global random seed (data split, weight init, shuffling).", min=0),
        "data": Section(
            "Where the jets come from and how they are split and scaled.",
            {
                "source": Key(str, "default",
                              "'default' (the sample shipped inside edgeml), 'openml' (download hls4ml_lhc_jets_hlf "
                              "once into the user cache), or a path to a CSV, NPZ, HDF5 or Parquet file."),
                "max_jets": Key(int, None, "Use at most this many jets (random subset, stratified by seed).",
                                min=100, nullable=True),
                "test_fraction": Key(float, 0.2, "Fraction of jets held out for the test split.", min=0.05, max=0.5),
                "val_fraction": Key(float, 0.2, "Fraction of the remaining jets used for validation.",
                                    min=0.05, max=0.5),
            },
        ),
        "model": Section(
            "The float jet tagger (default: the hls4ml tutorial network 16-64-32-32-5).",
            {
                "hidden": Key(list, [64, 32, 32], "Widths of the hidden Dense layers.", item_type=int),
                "activation": Key(str, "relu", "Hidden-layer activation.", choices=("relu", "tanh", "sigmoid")),
                "kernel_initializer": Key(str, "lecun_uniform", "Keras kernel initializer name."),
                "l1": Key(float, 1e-4, "L1 kernel regularisation strength.", min=0.0, max=1.0),
                "batch_norm": Key(bool, False, "Insert BatchNormalization after each hidden Dense layer."),
                "dropout": Key(float, 0.0, "Dropout rate after each hidden layer (0 disables).", min=0.0, max=0.9),
            },
        ),
        "train": Section(
            "Training of the float baseline.",
            {
                "epochs": Key(int, 30, "Maximum number of epochs.", min=1, max=10000),
                "batch_size": Key(int, 1024, "Mini-batch size.", min=1, max=1 << 20),
                "learning_rate": Key(float, 1e-3, "Adam learning rate.", min=1e-7, max=1.0),
                "early_stopping_patience": Key(int, 6, "Epochs without val_loss improvement before stopping.",
                                               min=1),
                "lr_patience": Key(int, 3, "Epochs without improvement before the learning rate is reduced.", min=1),
                "lr_factor": Key(float, 0.5, "Factor applied to the learning rate on plateau.", min=0.01, max=0.99),
                "min_lr": Key(float, 1e-5, "Lower bound of the learning rate.", min=0.0),
            },
        ),
        "hls": HLS_SECTION,
        "convert": Section(
            "How `edgeml convert` evaluates the firmware.",
            {
                "engine": Key(str, "emulate",
                              "Firmware evaluation: `emulate` (bit-exact NumPy emulator, no g++; layers it does not "
                              "cover fall back to C-sim), `csim` (hls4ml's g++ C-simulation) or `both` (cross-check).",
                              choices=("emulate", "csim", "both")),
            },
        ),
        "estimate": Section(
            "What `edgeml estimate` answers rank and budget on (docs/estimate.md).",
            {
                "basis": Key(str, "post_synthesis", "Which estimate decides 'fits the part', the report's cost column "
                             "and Pareto front and the search budget/objective: `post_synthesis` (Vivado utilization) "
                             "or `csynth` (the HLS tool's pre-synthesis numbers).",
                             choices=("post_synthesis", "csynth")),
            },
        ),
        "compression": COMPRESSION_SECTION,
        "search": SEARCH_SECTION,
    },
)


def defaults(section: Section = SCHEMA) -> dict:
    out = {}
    for name, spec in section.keys.items():
        if isinstance(spec, Section):
            out[name] = None if spec.optional else defaults(spec)
        elif isinstance(spec, Mapping):
            out[name] = copy.deepcopy(spec.default)
        else:
            out[name] = copy.deepcopy(spec.default)
    return out


def estimate_basis(cfg: dict) -> str:
    """The config's ``estimate.basis``, or its schema default for a config made in code without that section."""
    return (cfg.get("estimate") or {}).get("basis") or SCHEMA.keys["estimate"].keys["basis"].default


def validate(raw: Any, section: Section = SCHEMA, where: str = "") -> dict:
    """Return ``raw`` merged over the defaults; raise ConfigError naming the first bad key."""
    out = _validate_section(raw, section, where)
    if section is SCHEMA:
        check_compression(out["compression"], "compression")
        check_hls(out["hls"], "hls")
    return out


def check_compression(c: dict, where: str) -> None:
    """Rules between compression keys: an HGQ recipe learns its own bits and zeros; a beta ramp goes up."""
    beta = c["hgq"]["beta"]
    if beta["end"] < beta["start"]:
        raise ConfigError(f"config error: {where}.hgq.beta.end = {beta['end']!r} is below {where}.hgq.beta.start = "
                          f"{beta['start']!r}; the penalty ramps up: raise end or lower start")
    if beta["interpolation"] == "log" and beta["start"] == 0 < beta["end"]:
        raise ConfigError(f"config error: {where}.hgq.beta.start = 0 cannot start a log ramp; set a positive start "
                          "or interpolation: linear")
    if c["kind"] != "hgq":
        return
    if c["quantize"]["enabled"]:
        raise ConfigError(f"config error: {where}.quantize.enabled is true with {where}.kind = 'hgq'; HGQ learns "
                          "every bit width itself: remove the quantize section")
    prune = c["prune"]
    if prune["sparsity"] > 0 or any(v > 0 for v in prune["per_layer"].values()):
        raise ConfigError(f"config error: {where}.prune is set with {where}.kind = 'hgq'; HGQ prunes weights that "
                          "learn 0 bits: remove the prune section")


def check_hls(hls: dict, where: str) -> None:
    """hls4ml's rule for distributed arithmetic: ReuseFactor 1 and io_parallel, model-wide or per layer."""
    layers = hls.get("LayerName", {})
    for name, entry in [(None, hls), *layers.items()]:
        strategy = entry.get("Strategy") or (hls["Strategy"] if name is not None else None)
        if strategy != DA:
            continue
        at = f"{where}.LayerName.{name}" if name is not None and entry.get("Strategy") else where
        reuse = entry.get("ReuseFactor") or hls["ReuseFactor"]
        if reuse != 1:
            key = f"{where}.LayerName.{name}.ReuseFactor" if name is not None and entry.get("ReuseFactor") \
                else f"{where}.ReuseFactor"
            raise ConfigError(f"config error: {key} = {reuse} with {at}.Strategy = '{DA}'; distributed arithmetic "
                              "needs ReuseFactor 1 (or use Latency/Resource)")
        if hls["IOType"] != "io_parallel":
            raise ConfigError(f"config error: {where}.IOType = '{hls['IOType']}' with {at}.Strategy = '{DA}'; "
                              "distributed arithmetic needs io_parallel here")


def _validate_section(raw: Any, section: Section, where: str) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error: {where or 'the config'} must be a mapping of keys to values, got {raw!r}")
    unknown = [k for k in raw if k not in section.keys]
    if unknown:
        key = f"{where}.{unknown[0]}" if where else str(unknown[0])
        raise ConfigError(f"config error: unknown key '{key}' (allowed: {', '.join(section.keys)})")
    out = defaults(section)
    for name, value in raw.items():
        path = f"{where}.{name}" if where else name
        out[name] = _validate_value(value, section.keys[name], path)
    return out


def _validate_value(value: Any, spec: Key | Section | Mapping, path: str) -> Any:
    if isinstance(spec, Section):
        if value is None and spec.optional:
            return None
        return _validate_section(value, spec, path)
    if isinstance(spec, Mapping):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"config error: {path} = {value!r} must be a mapping (name: settings)")
        return {str(k): _validate_value(v, spec.value, f"{path}.{k}") for k, v in value.items()}
    return _validate_key(value, spec, path)


def _type_name(t: type | tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "a mapping"}
    ts = t if isinstance(t, tuple) else (t,)
    return " or ".join(names.get(x, x.__name__) for x in ts)


def _validate_key(value: Any, spec: Key, path: str) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise ConfigError(f"config error: {path} must not be empty (expected {_type_name(spec.type)})")
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"config error: {path} = {value!r} must be {_type_name(spec.type)}")
    if not isinstance(value, types):
        raise ConfigError(f"config error: {path} = {value!r} must be {_type_name(spec.type)}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(
            f"config error: {path} = {value!r} is not allowed (allowed: {', '.join(map(str, spec.choices))})"
        )
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"config error: {path} = {value!r} is below the minimum {spec.min}")
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"config error: {path} = {value!r} is above the maximum {spec.max}")
    if spec.item_type is not None:
        for i, item in enumerate(value):
            if not isinstance(item, spec.item_type) or (isinstance(item, bool) and spec.item_type is not bool):
                raise ConfigError(
                    f"config error: {path}[{i}] = {item!r} must be {_type_name(spec.item_type)}"
                )
            if spec.item_type is int and item < 1:
                raise ConfigError(f"config error: {path}[{i}] = {item!r} must be at least 1")
    if spec.check is not None:
        spec.check(path, value)
    return copy.deepcopy(value)


def load(path: str | Path | None) -> dict:
    """Load and validate a YAML config file (``None``: all defaults)."""
    if path is None:
        return validate({})
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config error: {path} does not exist; pass the path of a YAML config file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config error: {path} is not valid YAML{at}; fix the syntax and retry") from None
    return validate(raw)


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def render_docs(section: Section = SCHEMA, prefix: str = "") -> str:
    """Markdown reference of every key with its default (the body of docs/config.md)."""
    lines: list[str] = []
    if not prefix:
        lines += [
            "# Configuration reference",
            "",
            "Generated from `edgeml/config.py` by `python -m edgeml.config > docs/config.md`; "
            "a test keeps it in sync.",
            "Every key is optional: a missing key takes its default. Unknown keys, wrong types and "
            "out-of-range values are refused on load with a one-line error naming the key.",
            "",
        ]
    rows: list[str] = []
    subsections: list[tuple[str, Section | Mapping]] = []
    for name, spec in section.keys.items():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(spec, (Section, Mapping)):
            subsections.append((path, spec))
        else:
            rows.append(_doc_row(path, spec))
    if rows:
        lines += [f"## `{prefix}`" if prefix else "## top level", "", section.doc, "",
                  "| key | default | allowed | meaning |", "|---|---|---|---|", *rows, ""]
    for path, spec in subsections:
        if isinstance(spec, Mapping):
            lines += [f"## `{path}.<name>`", "", spec.doc, ""]
            inner = spec.value
            if isinstance(inner, Section):
                lines += ["| key | default | allowed | meaning |", "|---|---|---|---|",
                          *[_doc_row(f"{path}.<name>.{k}", v) for k, v in inner.keys.items() if isinstance(v, Key)],
                          ""]
        else:
            lines.append(render_docs(spec, path))
    return "\n".join(lines)


def _doc_row(path: str, spec: Key) -> str:
    allowed = []
    if spec.choices:
        allowed.append(", ".join(f"`{c}`" for c in spec.choices))
    else:
        allowed.append(_type_name(spec.type) + (f" of {_type_name(spec.item_type)}" if spec.item_type else ""))
    if spec.min is not None:
        allowed.append(f"≥ {spec.min}")
    if spec.max is not None:
        allowed.append(f"≤ {spec.max}")
    if spec.nullable:
        allowed.append("or null")
    default = "null" if spec.default is None else f"`{yaml.safe_dump(spec.default, default_flow_style=True).strip().removesuffix('...').strip()}`"
    return f"| `{path}` | {default} | {'; '.join(allowed)} | {spec.doc} |"


if __name__ == "__main__":
    print(render_docs())
