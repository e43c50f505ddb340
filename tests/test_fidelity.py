"""Fidelity analysis on hand-made arrays and rows: NumPy only, no model, no g++."""

import numpy as np
import pytest

from edgeml.firmware.advice import argmax_agreement
from edgeml.errors import InputError
from edgeml.firmware.fidelity import (engine_agreement, first_broken_layer, mark_status, notes, one_hot_argmax,
                                      top_ties)
from edgeml.firmware.tasks import (OutputTask, check_labels, reconstruction_score, regression_fidelity,
                                   score_fidelity, threshold_at_rate, tie_gaps, working_point, working_points)


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
    result = engine_agreement([out], traces, [out.copy()], other)
    assert result == {"n": 3, "identical_fraction": pytest.approx(2 / 3), "max_abs_diff": 0.25,
                      "layers": {"fc1": pytest.approx(2 / 3)}}
    assert engine_agreement([out], {}, [out], {})["identical_fraction"] == 1.0
    second = np.array([[1.0], [1.0], [2.0]])  # a second model output differing in one event
    assert engine_agreement([out, second], {}, [out, second + [[0], [0], [1]]], {})["identical_fraction"] == \
        pytest.approx(2 / 3)


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
    c = {"task": "classification", "argmax_agreement": 0.98, "argmax_agreement_logits": 1.0, "softmax_ties": 0.02,
         "bit_exact_logits": True, "input_overflow_fraction": 0.0, "softmax": "stable", "accuracy_keras": 0.7}
    text = " ".join(notes(c))
    assert "2.00% of events two equal top outputs" in text and "bit-exact" in text
    assert "argmax softmax" in text and "no labels" not in text
    assert "no labels" in " ".join(notes({**c, "accuracy_keras": None}))


def test_threshold_keeps_the_rate_and_never_splits_ties():
    score = np.array([5.0, 4.0, 4.0, 4.0, 3.0, 2.0, 1.0, 1.0, 0.0, 0.0])
    assert threshold_at_rate(score, 0.1) == 4.0  # only the 5 is strictly above: 10% exactly
    assert threshold_at_rate(score, 0.3) == 4.0  # 30% would cut into the three tied 4s: all stay out
    assert threshold_at_rate(score, 0.4) == 3.0  # 5 and the three 4s: 40%
    assert threshold_at_rate(score, 1.0) == -np.inf
    assert threshold_at_rate(score, 0.05) == 5.0  # less than one event allowed: nothing passes


def test_working_point_reports_the_achieved_rate_and_the_ties():
    # background: ten events, four tied at 0.5 (a firmware output with few distinct values)
    background = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.2, 0.1, 0.1, 0.0, 0.0])
    signal = np.array([0.95, 0.9, 0.5, 0.5, 0.3])
    score = np.concatenate([background, signal])
    is_signal = np.arange(15) >= 10
    point = working_point(score, is_signal, 0.3)  # 3 background events allowed; the 4 tied at 0.5 cannot be split
    assert point["threshold"] == 0.5 and point["background_rate"] == pytest.approx(0.1)
    assert point["signal_efficiency"] == pytest.approx(2 / 5)  # 0.95 and 0.9; the two signal events at 0.5 stay out
    assert point["ties_at_threshold"] == 6 and point["background_ties_at_threshold"] == 4
    # the next point the discrete score allows: every tied event in, above the target rate
    assert point["background_rate_with_ties"] == pytest.approx(0.5)
    assert point["signal_efficiency_with_ties"] == pytest.approx(4 / 5)


def test_working_points_the_firmware_ties_cannot_reach_are_named():
    y = np.array([0] * 100 + [1] * 100)
    keras = np.concatenate([np.linspace(0, 0.9, 100), np.linspace(0.5, 1, 100)])[:, None]
    firmware = np.minimum(keras, 0.85)  # a saturating output: 6 background events at 0.85, more than 1% of them
    gaps = tie_gaps(working_points(y, keras, firmware, ["0", "1"]))
    assert gaps == ["1 at 0.01: 0 or 0.06 with the 6 background events tied at 0.85",
                    "1 at 0.001: 0 or 0.06 with the 6 background events tied at 0.85"]
    assert tie_gaps(working_points(y, keras, keras, ["0", "1"])) == []


def test_working_points_per_class_keras_against_firmware():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    keras = rng.random((3000, 3)) + np.eye(3)[y]
    firmware = np.floor(keras * 8) / 8  # a coarse firmware: many ties
    result = working_points(y, keras, firmware, ["a", "b", "c"])
    assert set(result) == {"a", "b", "c"}
    for rows in result.values():
        assert [r["background_rate_target"] for r in rows] == [0.1, 0.01, 0.001]
        for r in rows:
            assert r["keras"]["background_rate"] <= r["background_rate_target"]
            assert r["firmware"]["background_rate"] <= r["background_rate_target"]
            assert r["firmware"]["ties_at_threshold"] > 0  # the coarse outputs tie at every threshold
    same = working_points(y, keras, keras, ["a", "b", "c"])["a"][0]
    assert same["keras"] == same["firmware"] and same["selected_by_both_fraction"] == 1.0
    binary = working_points((y == 1).astype(int), keras[:, 1:2], keras[:, 1:2], ["0", "1"])
    assert list(binary) == ["1"]  # one output: the class-1 score against class 0


def test_anomaly_score_rank_correlation_and_tail_agreement():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20000, 8))
    reco = x + rng.normal(scale=0.5, size=x.shape)
    keras = reconstruction_score(x, reco)
    np.testing.assert_allclose(keras, np.mean((reco - x) ** 2, axis=1))
    exact = score_fidelity(keras, keras.copy())
    assert exact["spearman"] == pytest.approx(1.0)
    assert [r["selected_keras"] for r in exact["thresholds"]] == [20, 2]
    assert all(r["selected_by_both_fraction"] == 1.0 for r in exact["thresholds"])
    coarse = np.round(keras * 4) / 4  # a firmware score with few distinct values
    tied = score_fidelity(keras, coarse, signal=keras > np.quantile(keras, 0.99))
    assert tied["spearman"] < 1 and tied["distinct_firmware_values"] < 100
    row = tied["thresholds"][0]
    assert row["selected_firmware"] <= 20 and row["ties_at_threshold_firmware"] >= 1
    assert 0 <= row["signal_efficiency_firmware"] <= row["signal_efficiency_keras"] <= 1


def test_regression_errors_per_output_value():
    keras = np.array([[1.0, 100.0], [2.0, 200.0], [4.0, -100.0]])
    firmware = keras + np.array([[0.5, 1.0], [0.0, 0.0], [0.0, 2.0]])
    r = regression_fidelity(keras, firmware, keras, target=keras)
    assert r["max_abs_diff"] == [0.5, 2.0] and r["max_abs_diff_all"] == 2.0
    assert r["relative_error_median"] == [0.0, pytest.approx(0.01)]
    assert r["mae_keras"] == [0.0, 0.0] and r["mae_firmware"] == [pytest.approx(0.5 / 3), 1.0]


def test_labels_that_do_not_fit_the_task_say_so():
    cls = OutputTask("out", "classification", "softmax output")
    np.testing.assert_array_equal(check_labels(cls, np.array([0, 2, 1]), (3,), "d.npz"), [0, 2, 1])
    np.testing.assert_array_equal(check_labels(cls, np.eye(3)[[2, 0]], (3,), "d.npz"), [2, 0])
    with pytest.raises(InputError, match=r"labels 'y' do not fit the classification task of output 'out': "
                                         r"expected integer classes 0..2 or one-hot \(n, 3\)"):
        check_labels(cls, np.array([0.5, 1.2]), (3,), "d.npz")
    with pytest.raises(InputError, match="classes 0..2"):
        check_labels(cls, np.array([0, 3]), (3,), "d.npz")
    reg = OutputTask("out", "regression", "--task")
    assert check_labels(reg, np.ones((4, 2)), (2,), "d.npz").shape == (4, 2)
    with pytest.raises(InputError, match=r"regression task .* shape \(n, 2\), found shape \(4, 3\)"):
        check_labels(reg, np.ones((4, 3)), (2,), "d.npz")
    ae = OutputTask("dec", "autoencoder", "output has the input's shape")
    assert check_labels(ae, np.array([0, 1, 1]), (20,), "d.npz").dtype == bool
    with pytest.raises(InputError, match="0 \\(background\\) or 1 \\(signal\\)"):
        check_labels(ae, np.array([0, 2]), (20,), "d.npz")
