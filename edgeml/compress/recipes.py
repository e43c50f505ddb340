"""Recipes: a ``compression`` config section run end to end on a float baseline.

``kind: hgq`` recipes are HGQ trainings (``edgeml.compress.hgq``). Otherwise a recipe chains the
passes in a fixed order: build the student (float or QKeras,
optionally with other widths), start from the baseline's weights or from scratch,
wrap for pruning, train (with the distillation loss when enabled), strip, measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from edgeml import config as cfgmod
from edgeml.errors import InputError


@dataclass
class Recipe:
    name: str
    settings: dict  # a validated ``compression`` section
    source: Path | None = None  # the recipe file, when it came from one


def resolve_recipe(entry: str, base_dir: str | Path | None = None) -> Path:
    """A recipes-list entry as a file: tried as given, in ./configs/, then among the recipes installed with
    edgeml; with and without '.yaml'."""
    from edgeml.paths import packaged_configs

    roots = [Path(base_dir)] if base_dir is not None else []
    roots += [Path.cwd(), Path.cwd() / "configs", packaged_configs()]
    names = [entry] if entry.endswith((".yaml", ".yml")) else [entry, f"{entry}.yaml"]
    for root in roots:
        for name in names:
            candidate = root / name
            if candidate.is_file():
                return candidate
    raise InputError(f"compression recipe {entry!r} not found (looked in {', '.join(str(r) for r in roots)}); "
                     "give a path relative to the working directory or the name of a file in configs/")


def recipe_files(cfg: dict, base_dir: str | Path | None = None) -> list[Path]:
    return [resolve_recipe(entry, base_dir) for entry in cfg["compression"]["recipes"]]


def load_recipes(cfg: dict, base_dir: str | Path | None = None, default_name: str | None = None) -> list[Recipe]:
    """The recipes ``cfg`` lists, else ``cfg``'s own compression section if it compresses anything, else []."""
    if not cfg["compression"]["recipes"]:
        own = cfg["compression"]
        return [Recipe(own["name"] or default_name or cfg["name"], own)] if is_active(own) else []
    recipes = []
    for path in recipe_files(cfg, base_dir):
        section = cfgmod.load(path)["compression"]
        if section["recipes"]:
            raise InputError(f"recipe file {path} lists recipes itself; a recipe file describes one recipe")
        recipes.append(Recipe(section["name"] or path.stem, section, path))
    names = [r.name for r in recipes]
    duplicated = sorted({n for n in names if names.count(n) > 1} | ({"baseline"} & set(names)))
    if duplicated:
        raise InputError(f"recipe name(s) {', '.join(duplicated)} used twice or reserved; set compression.name")
    return recipes


def is_active(settings: dict) -> bool:
    """Whether a compression section changes the model at all (a config without one runs no recipe)."""
    prune = settings["prune"]
    return bool(settings["kind"] == "hgq" or settings["quantize"]["enabled"] or settings["distill"]["enabled"] or settings["student"]["hidden"]
                or prune["sparsity"] > 0 or any(v > 0 for v in prune["per_layer"].values()))


def student_model_cfg(cfg: dict, settings: dict) -> dict:
    hidden = settings["student"]["hidden"] or cfg["model"]["hidden"]
    return {**cfg["model"], "hidden": list(hidden)}


def build_student(cfg: dict, settings: dict, n_features: int, n_classes: int, seed: int):
    from edgeml.compress.quantize import build_qkeras_model
    from edgeml.train import build_model

    model_cfg = student_model_cfg(cfg, settings)
    if settings["quantize"]["enabled"]:
        return build_qkeras_model(model_cfg, settings["quantize"], n_features, n_classes, seed)
    return build_model(model_cfg, n_features, n_classes, seed)


def train_settings(cfg: dict, settings: dict) -> dict:
    return {**cfg["train"], "epochs": settings["epochs"],
            "learning_rate": settings["learning_rate"] or cfg["train"]["learning_rate"]}


def train_teacher(cfg: dict, settings: dict, splits, baseline, progress: bool | None = None):
    """The float baseline, or a larger float model trained here when distill.teacher_hidden is set."""
    from edgeml.train import build_model, fit

    hidden = settings["distill"]["teacher_hidden"]
    if hidden is None:
        if baseline is None:
            raise InputError("distillation needs a teacher: pass the float baseline (--from) or set "
                             "compression.distill.teacher_hidden")
        return baseline
    teacher = build_model({**cfg["model"], "hidden": list(hidden)}, splits.X_train.shape[1], len(splits.classes),
                          cfg["seed"])
    fit(teacher, splits, cfg["train"], progress=progress)
    return teacher


def fit_compressed(model, splits, y_train, y_val, train_cfg: dict, loss, extra_callbacks: list,
                   settled_epoch: int, progress: bool | None = None, autotune_input: bool = True) -> dict:
    """Train ``model``'s logits on (X, y) with the standard callbacks; return the history.

    Early stopping and the best-weights restore only consider epochs from ``settled_epoch``
    on, when pruning has reached its target: an earlier, denser epoch must not win.
    ``autotune_input=False`` feeds ``edgeml.train.untuned_batches`` instead of Keras's autotuned
    pipeline (same batching, different shuffle stream): search trials, one TensorFlow thread each.
    """
    import tensorflow as tf

    from edgeml.compress.distill import label_accuracy, logits_model
    from edgeml.train import fit_inputs, standard_callbacks

    callbacks = standard_callbacks(train_cfg, None, progress)
    stopper = next(c for c in callbacks if isinstance(c, tf.keras.callbacks.EarlyStopping))
    stopper.start_from_epoch = settled_epoch
    trainable = logits_model(model)
    trainable.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=train_cfg["learning_rate"]), loss=loss,
                      metrics=[label_accuracy])
    epochs, batch_size = train_cfg["epochs"], train_cfg["batch_size"]
    inputs = fit_inputs(splits.X_train, y_train, splits.X_val, y_val, batch_size, epochs, autotune_input)
    history = trainable.fit(**inputs, epochs=epochs, verbose=0, callbacks=callbacks + list(extra_callbacks))
    if stopper.best_weights is not None and not stopper.stopped_epoch:
        trainable.set_weights(stopper.best_weights)  # EarlyStopping restores only when it fires
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def train_recipe(recipe: Recipe, cfg: dict, splits, baseline, progress: bool | None = None,
                 autotune_input: bool = True) -> tuple:
    """Build, compress and train one recipe's model; return (model, history, extra metrics). Nothing is
    written and the test split is not touched: a search trial scores on the validation split only.

    ``autotune_input``: see ``fit_compressed``.
    """
    import tensorflow as tf

    from edgeml.compress.distill import distillation_loss, pack_targets, teacher_logits
    from edgeml.compress.prune import apply_pruning, layer_targets, pruning_callbacks, sparsity_report, strip
    from edgeml.compress.quantize import copy_weights, trace_layer_libraries_without_autograph

    s = recipe.settings
    if s["kind"] == "hgq":
        raise InputError(f"recipe {recipe.name} is an HGQ recipe: train it with edgeml.compress.hgq.train_hgq")
    trace_layer_libraries_without_autograph()
    n_features, n_classes = splits.X_train.shape[1], len(splits.classes)
    model = build_student(cfg, s, n_features, n_classes, cfg["seed"])
    if s["start"] == "baseline":
        if baseline is None:
            raise InputError(f"recipe {recipe.name} starts from the baseline; pass the float model (--from) or set "
                             "compression.start: scratch")
        copy_weights(baseline, model)
    train_cfg = train_settings(cfg, s)
    targets = layer_targets(model, s["prune"])
    callbacks, settled, pruned = [], 0, any(t > 0 for t in targets.values())
    if pruned:
        steps_per_epoch = math.ceil(len(splits.y_train) / train_cfg["batch_size"])
        model, steps = apply_pruning(model, s["prune"], train_cfg["epochs"], steps_per_epoch)
        callbacks, settled = pruning_callbacks(), steps["settled_epoch"]
    y_train, y_val = splits.y_train, splits.y_val
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if s["distill"]["enabled"]:
        teacher = train_teacher(cfg, s, splits, baseline, progress)
        y_train = pack_targets(splits.y_train, teacher_logits(teacher, splits.X_train))
        y_val = pack_targets(splits.y_val, teacher_logits(teacher, splits.X_val))
        loss = distillation_loss(s["distill"]["alpha"], s["distill"]["temperature"])
    history = fit_compressed(model, splits, y_train, y_val, train_cfg, loss, callbacks, settled, progress,
                             autotune_input)
    if pruned:
        model = strip(model)
    extra = {"recipe": recipe.name, "target_sparsity": targets,
             "achieved_sparsity": sparsity_report(model), "quantized": s["quantize"]["enabled"],
             "distilled": s["distill"]["enabled"], "hidden": student_model_cfg(cfg, s)["hidden"]}
    return model, history, extra


def run_recipe(recipe: Recipe, cfg: dict, splits, baseline, out_dir: str | Path, progress: bool | None = None,
               autotune_input: bool = True):
    """Build, compress, train and save one recipe's model (with its test metrics); return its
    ``TrainedModel`` paths."""
    from edgeml.train import save_trained

    if recipe.settings["kind"] == "hgq":
        from edgeml.compress.hgq import run_hgq_recipe

        return run_hgq_recipe(recipe, cfg, splits, baseline, out_dir, progress)
    model, history, extra = train_recipe(recipe, cfg, splits, baseline, progress, autotune_input)
    return save_trained(model, splits, history, out_dir, recipe.name, extra=extra)


def compress(cfg: dict, out_dir: str | Path, baseline=None, splits=None, base_dir: str | Path | None = None,
             default_name: str | None = None, progress: bool | None = None) -> dict:
    """Run every recipe of ``cfg`` on ``baseline`` (a Keras model; trained here from ``cfg`` when None).

    Returns {name: TrainedModel}; the baseline is included when it was trained here.
    """
    from edgeml.data import splits_from_config
    from edgeml.modelio import load_model
    from edgeml.progress import stage
    from edgeml.train import train

    recipes = load_recipes(cfg, base_dir, default_name)
    splits = splits if splits is not None else splits_from_config(cfg)
    results = {}
    if baseline is None:
        stage("compress: training the float baseline first (pass --from to reuse one)")
        results["baseline"] = train(cfg, out_dir, "baseline", splits=splits, progress=progress)
        baseline = load_model(results["baseline"].model)
    check_compatible(baseline, splits.X_train.shape[1], len(splits.classes))
    for recipe in recipes:
        stage(f"compress: recipe {recipe.name}")
        results[recipe.name] = run_recipe(recipe, cfg, splits, baseline, out_dir, progress)
    return results


def check_compatible(baseline, n_features: int, n_classes: int) -> None:
    """Refuse a --from model whose input/output does not match the data."""
    shape_in, shape_out = baseline.input_shape[-1], baseline.output_shape[-1]
    if (shape_in, shape_out) != (n_features, n_classes):
        raise InputError(f"model takes {shape_in} features and gives {shape_out} classes; the data has "
                         f"{n_features} and {n_classes}")


__all__ = ["Recipe", "check_compatible", "compress", "load_recipes", "recipe_files", "resolve_recipe",
           "run_recipe", "train_recipe"]
