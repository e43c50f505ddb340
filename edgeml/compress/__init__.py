"""Compression passes (model in, model out) and the recipes that chain them.

- ``prune``: tfmot magnitude pruning to a target sparsity, then ``strip``.
- ``quantize``: the QKeras (QDense/QActivation) twin of the float tagger.
- ``distill``: knowledge-distillation loss with precomputed teacher logits.
- ``cost``: parameters, nonzero weights, sparsity and BOPs of any tagger.
- ``recipes``: a config's ``compression`` section run end to end.
"""

from edgeml.compress.cost import model_cost
from edgeml.compress.distill import distillation_loss, pack_targets, teacher_logits
from edgeml.compress.prune import apply_pruning, pruning_callbacks, sparsity_report, strip
from edgeml.compress.quantize import build_qkeras_model, copy_weights, layer_bits
from edgeml.compress.recipes import Recipe, compress, load_recipes, run_recipe, train_recipe

__all__ = ["Recipe", "apply_pruning", "build_qkeras_model", "compress", "copy_weights", "distillation_loss",
           "layer_bits", "load_recipes", "model_cost", "pack_targets", "pruning_callbacks", "run_recipe",
           "sparsity_report", "strip", "teacher_logits", "train_recipe"]
