"""Evaluation helpers (vg.metrics) against hand-computed values, and the figures of vg.plot."""

import math
import sys

import numpy as np
import pytest

import tapegrad as vg
from tapegrad import metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---- accuracy, 0/1 error, confusion matrix ----

def test_accuracy_compares_labels():
    assert metrics.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75


def test_accuracy_takes_the_argmax_of_scores_per_row():
    scores = np.array([[0.1, 0.9], [2.0, -1.0], [0.3, 0.4]])
    assert metrics.accuracy(scores, [1, 0, 0]) == pytest.approx(2 / 3)


def test_accuracy_thresholds_a_single_column_of_probabilities_at_one_half():
    probs = np.array([[0.9], [0.2], [0.51], [0.49]])
    assert metrics.accuracy(probs, [1, 0, 0, 0]) == 0.75


def test_accuracy_reads_tensor_nodes_and_column_targets():
    scores = vg.TensorNode(np.array([[1.0, 0.0], [0.0, 1.0]]), requires_grad=False)
    assert metrics.accuracy(scores, np.array([[0], [0]])) == 0.5


def test_zero_one_error_is_one_minus_accuracy():
    pred, y = np.array([0, 1, 1, 0, 1]), np.array([0, 1, 0, 0, 0])
    assert metrics.zero_one_error(pred, y) == pytest.approx(0.4)
    assert metrics.zero_one_error(pred, y) == pytest.approx(1 - metrics.accuracy(pred, y))


@pytest.mark.parametrize("pred, y, message", [
    ([0, 1], [0, 1, 1], "2 instances but targets 3"),
    ([], [], "empty"),
    (np.zeros((2, 2, 2)), [0, 1], "shape"),
    ([0, 1], np.zeros((2, 3)), "targets must be labels"),
    (3, [1], "scalar"),
])
def test_accuracy_rejects_mismatched_or_malformed_input(pred, y, message):
    with pytest.raises(ValueError, match=message):
        metrics.accuracy(pred, y)


def test_confusion_matrix_counts_true_classes_in_rows_and_predictions_in_columns():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    expected = [[1, 1, 0],
                [0, 1, 0],
                [1, 0, 2]]
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred), expected)


def test_confusion_matrix_takes_scores_and_a_number_of_classes():
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 0], scores, num_classes=3),
                                  [[1, 1, 0], [0, 0, 0], [0, 0, 0]])


def test_confusion_matrix_sums_to_the_number_of_instances_and_its_trace_to_the_correct_ones():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    c = metrics.confusion_matrix(y, p, num_classes=4)
    assert c.sum() == 200 and np.trace(c) == np.sum(y == p)


@pytest.mark.parametrize("y, p, k, message", [([0, 3], [0, 1], 3, r"\[0, 3\)"), ([0, -1], [0, 1], None, "lie in"),
                                              ([0.5, 1], [0, 1], None, "integer")])
def test_confusion_matrix_rejects_labels_outside_the_classes(y, p, k, message):
    with pytest.raises(ValueError, match=message):
        metrics.confusion_matrix(y, p, num_classes=k)


# ---- Hoeffding ----

def test_hoeffding_sample_size_for_one_percent_at_99_percent_confidence_is_26492():
    assert metrics.hoeffding_sample_size(0.01, 0.99) == 26_492


@pytest.mark.parametrize("eps, confidence", [(0.01, 0.95), (0.05, 0.9), (0.02, 0.999), (0.1, 0.5)])
def test_hoeffding_sample_size_is_the_smallest_m_whose_bound_reaches_the_confidence(eps, confidence):
    m = metrics.hoeffding_sample_size(eps, confidence)
    assert 2 * math.exp(-2 * m * eps ** 2) <= 1 - confidence < 2 * math.exp(-2 * (m - 1) * eps ** 2)


def test_hoeffding_epsilon_inverts_the_sample_size():
    assert metrics.hoeffding_epsilon(26_492, 0.99) == pytest.approx(0.01, rel=1e-4)
    assert metrics.hoeffding_epsilon(10_000, 0.99) == pytest.approx(math.sqrt(math.log(200) / 20_000))


def test_hoeffding_interval_is_the_error_plus_minus_epsilon_clipped_to_0_1():
    low, high = metrics.hoeffding_interval(0.1, 26_492, 0.99)
    assert low == pytest.approx(0.09, abs=1e-6) and high == pytest.approx(0.11, abs=1e-6)
    assert metrics.hoeffding_interval(0.0, 100, 0.95) == (0.0, pytest.approx(math.sqrt(math.log(40) / 200)))
    assert metrics.hoeffding_interval(1.0, 100, 0.95)[1] == 1.0


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.hoeffding_sample_size(0, 0.9), "eps"),
    (lambda: metrics.hoeffding_sample_size(0.1, 1.0), "confidence"),
    (lambda: metrics.hoeffding_sample_size(0.1, 0), "confidence"),
    (lambda: metrics.hoeffding_interval(1.5, 10), "error"),
    (lambda: metrics.hoeffding_interval(0.1, 0), "m must be"),
    (lambda: metrics.hoeffding_epsilon(2.5), "m must be"),
])
def test_hoeffding_functions_reject_values_outside_their_domain(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- bootstrap ----

def test_bootstrap_of_values_is_reproducible_and_centred_on_the_mean():
    values = np.random.default_rng(0).standard_normal(400)
    first = metrics.bootstrap(values, n_resamples=300, seed=1)
    again = metrics.bootstrap(values, n_resamples=300, seed=1)
    np.testing.assert_array_equal(first.estimates, again.estimates)
    assert first.estimates.shape == (300,)
    assert first.statistic == pytest.approx(values.mean())
    assert first.mean == pytest.approx(values.mean(), abs=0.02)
    # the standard error of a mean of 400 standard normals is 1/20
    assert first.std == pytest.approx(values.std() / 20, rel=0.2)
    assert first.interval[0] < values.mean() < first.interval[1]


def test_bootstrap_without_a_seed_follows_numpys_global_generator():
    values = np.arange(30.0)
    np.random.seed(2)
    first = metrics.bootstrap(values, n_resamples=20)
    np.random.seed(2)
    np.testing.assert_array_equal(first.estimates, metrics.bootstrap(values, n_resamples=20).estimates)


def test_bootstrap_of_targets_and_predictions_estimates_the_zero_one_error():
    y = np.zeros(1000, dtype=int)
    p = np.zeros(1000, dtype=int)
    p[:100] = 1  # error 0.1
    result = metrics.bootstrap((y, p), n_resamples=400, seed=0, confidence=0.95)
    assert result.statistic == pytest.approx(0.1)
    assert result.std == pytest.approx(math.sqrt(0.1 * 0.9 / 1000), rel=0.2)
    assert result.interval[0] < 0.1 < result.interval[1]
    assert "BootstrapResult" in repr(result)


def test_bootstrap_applies_a_custom_statistic_to_each_resample():
    values = np.arange(10.0)
    result = metrics.bootstrap(values, statistic=np.max, n_resamples=50, seed=0)
    assert result.statistic == 9.0
    assert set(result.estimates) <= set(values) and result.estimates.max() <= 9.0


def test_bootstrap_of_a_constant_has_no_spread():
    result = metrics.bootstrap(np.full(20, 3.0), n_resamples=10, seed=0)
    assert result.std == 0 and result.interval == (3.0, 3.0)


@pytest.mark.parametrize("data, kwargs, message", [
    (np.arange(3.0), {"n_resamples": 0}, "n_resamples"),
    (np.arange(3.0), {"confidence": 1.2}, "confidence"),
    (np.array([]), {}, "no instances"),
    ((np.arange(3), np.arange(4)), {}, "targets hold 3 instances but predictions 4"),
    ((np.arange(3),), {}, "pair"),
])
def test_bootstrap_rejects_bad_arguments(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        metrics.bootstrap(data, **kwargs)


# ---- plots ----

@pytest.fixture
def matplotlib():
    return pytest.importorskip("matplotlib")


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


def test_curves_and_training_curves_write_pngs(matplotlib, tmp_path):
    vg.plot.curves({"a": [3, 2, 1], "b": [1, 2, 3]}, path=tmp_path / "c.png", ylabel="loss", logy=True)
    fig = vg.plot.training_curves([0.5, 0.3], {"relu": [0.8, 0.9], "sigmoid": [0.7, 0.8]},
                                  path=tmp_path / "sub" / "t.png", title="run")
    assert_png(tmp_path / "c.png")
    assert_png(tmp_path / "sub" / "t.png")
    assert len(fig.axes) == 2


def test_decision_boundary_writes_a_png_for_probabilities_and_for_scores(matplotlib, tmp_path):
    x, y = vg.load_five_points()
    vg.plot.decision_boundary(lambda g: 1 / (1 + np.exp(np.sum(g ** 2, axis=1) - 0.5)), x, y,
                              path=tmp_path / "p.png", resolution=20)
    vg.plot.decision_boundary(lambda g: vg.TensorNode(np.column_stack([g[:, 0], -g[:, 0]])), x, y,
                              path=tmp_path / "s.png", resolution=20)
    assert_png(tmp_path / "p.png")
    assert_png(tmp_path / "s.png")
    with pytest.raises(ValueError, match="points"):
        vg.plot.decision_boundary(lambda g: g[:, 0], x[:, :1], y)


def test_contour_paths_histogram_and_panels_of_one_figure_write_pngs(matplotlib, tmp_path):
    vg.plot.contour_paths(lambda a, b: a ** 2 + b ** 2, {"path": [[1, 1], [0.5, 0.5], [0, 0]]}, (-2, 2, -2, 2),
                          path=tmp_path / "c.png")
    vg.plot.histogram(np.random.default_rng(0).standard_normal(100), path=tmp_path / "h.png",
                      lines={"mean": 0.0, "interval": (-1.0, 1.0)}, xlabel="x")
    fig, (left, right) = vg.plot.figure(ncols=2)
    vg.plot.curves([1, 2], ax=left)
    vg.plot.histogram([1, 2, 2, 3], ax=right)
    vg.plot.save(fig, tmp_path / "two.png")
    for name in ("c.png", "h.png", "two.png"):
        assert_png(tmp_path / name)


def test_plot_functions_without_matplotlib_raise_import_error_saying_how_to_install_it(monkeypatch, tmp_path):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: the import fails
    assert not vg.plot.available()
    with pytest.raises(ImportError, match=r'pip install matplotlib \(in a tapegrad checkout: pip install "\.\[plot\]"\)'):
        vg.plot.curves([1, 2, 3], path=tmp_path / "c.png")
    with pytest.raises(ImportError, match="matplotlib"):
        vg.plot.figure()
    assert not (tmp_path / "c.png").exists()
