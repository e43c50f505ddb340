"""Knowledge distillation: the teacher's logits are computed once and travel with the labels.

Targets are packed as ``[label, z_t1, ..., z_tC]`` so Keras shuffles them together with
the inputs; the loss unpacks them:

    L = alpha * CE(y, softmax(z_s)) + (1 - alpha) * T^2 * KL(softmax(z_t/T) || softmax(z_s/T))

The T^2 factor keeps the soft-target gradients on the scale of the hard ones (Hinton et al. 2015).
"""

from __future__ import annotations

import numpy as np


def logits_model(model):
    """A model sharing ``model``'s layers that stops before the final softmax (the 'output' logits)."""
    import tensorflow as tf

    if model.layers[-1].name != "softmax":
        raise ValueError(f"model {model.name} does not end in a separate 'softmax' layer")
    return tf.keras.Model(model.inputs, model.layers[-2].output, name=f"{model.name}_logits")


def teacher_logits(teacher, X: np.ndarray) -> np.ndarray:
    """The teacher's pre-softmax outputs for ``X`` (float32), computed once."""
    return np.asarray(logits_model(teacher).predict(X, batch_size=4096, verbose=0), dtype=np.float32)


def pack_targets(y: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """``[label, teacher logits...]`` per jet: the y that ``distillation_loss`` expects."""
    return np.concatenate([np.asarray(y, np.float32)[:, None], logits.astype(np.float32)], axis=1)


def distillation_loss(alpha: float, temperature: float):
    """Keras loss over student logits and packed targets (see the module docstring)."""
    import tensorflow as tf

    t = float(temperature)

    def loss(y_true, z_student):
        labels = tf.cast(y_true[:, 0], tf.int32)
        z_teacher = y_true[:, 1:]
        hard = tf.keras.losses.sparse_categorical_crossentropy(labels, z_student, from_logits=True)
        log_p_teacher = tf.nn.log_softmax(z_teacher / t, axis=-1)
        log_p_student = tf.nn.log_softmax(z_student / t, axis=-1)
        kl = tf.reduce_sum(tf.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
        return alpha * hard + (1.0 - alpha) * t * t * kl

    loss.__name__ = "distillation_loss"
    return loss


def label_accuracy(y_true, z_student):
    """Accuracy against the label in column 0 of packed (or plain) targets."""
    import tensorflow as tf

    labels = tf.cast(tf.reshape(y_true, (tf.shape(y_true)[0], -1))[:, 0], tf.int64)
    return tf.cast(tf.equal(tf.argmax(z_student, axis=-1), labels), tf.float32)


label_accuracy.__name__ = "accuracy"
