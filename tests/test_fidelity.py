"""Fidelity analysis on hand-made arrays and rows: NumPy only, no model, no g++."""

import numpy as np
import pytest

from edgeml.firmware.advice import argmax_agreement
from edgeml.firmware.fidelity import (engine_agreement, first_broken_layer, mark_status, notes, one_hot_argmax,
                                      top_ties)


def test_decision_agreement_uses_the_first_maximum_like_the_firmware():
    firmware = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1]])
    keras = np.array([[0.6, 0.4, 0.0], [0.1, 0.7, 0.2], [0.2, 0.7, 0.1]])
    assert argmax_agreement(firmware, keras) == pytest.approx(2 / 3)  # the tie resolves to class 0, as in C++


def test_ties_count_jets_whose_two_largest_outputs_are_equal():
    assert top_ties(np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.25, 0.25, 0.5]])) == pytest.approx(1 / 3)
    assert top_ties(np.ones((4, 1))) == 0.0


def test_one_hot_argmax_is_what_the_argmax_softmax_outputs():
    np.testing.assert_array_equal(one_hot_argmax(np.array([[1.0, 3.0, 3.0], [-1.0, -2.0, -3.0]])),
                                  [[0, 1, 0], [1, 0, 0]])


def test_engine_agreement_counts_jets_identical_in_outputs_and_every_layer():
    out = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    traces = {"fc1": np.array([[1.0], [2.0], [3.0]]), "only_here": np.zeros((3, 1))}
    other = {"fc1": np.array([[1.0], [2.0], [3.25]])}
    result = engine_agreement(out, traces, out.copy(), other)
    assert result == {"n": 3, "identical_fraction": pytest.approx(2 / 3), "max_abs_diff": 0.25}
    assert engine_agreement(out, {}, out, {})["identical_fraction"] == 1.0


def row(name, max_abs_diff=0.0, output_range=(0.0, 1.0), **extra):
    return {"name": name, "max_abs_diff": max_abs_diff, "output_range": list(output_range), "overflow_fraction": 0.0,
            **extra}


def test_status_overflow_before_error_and_the_first_broken_layer():
    rows = [row("input_1"), row("fc1", accum_overflow=True), row("fc2", max_abs_diff=0.2), row("out", 0.01)]
    mark_status(rows)
    assert [r["status"] for r in rows] == ["ok", "overflow", "error", "ok"]
    assert first_broken_layer(rows)["name"] == "fc1"
    rows = [row("a", inp_norm_overflow_fraction=0.01), row("b")]
    mark_status(rows)
    assert rows[0]["status"] == "overflow" and first_broken_layer([rows[1]]) is None


def test_notes_explain_softmax_ties_and_bit_exact_logits():
    c = {"argmax_agreement": 0.98, "argmax_agreement_logits": 1.0, "softmax_ties": 0.02, "bit_exact_logits": True,
         "input_overflow_fraction": 0.0, "softmax": "stable"}
    text = " ".join(notes(c))
    assert "2.00% of jets two equal top outputs" in text and "bit-exact" in text
    assert "argmax softmax" in text
