"""Evaluation: accuracy, 0/1 error, confusion matrix, Hoeffding bounds and the bootstrap.

Predictions may be given as labels (n,) or as scores (n, C), whose row-wise argmax is the label;
a single column of scores (n, 1) holds probabilities of class 1, thresholded at 0.5. TensorNodes
are read through their ``.value``. Everything here is numpy on plain arrays: no graph is recorded.
"""

import math

import numpy as np


def _array(a, what):
    a = getattr(a, "value", a)  # a TensorNode gives its value
    a = np.asarray(a)
    if a.ndim == 0:
        raise ValueError(f"{what} must be an array of instances, got a scalar")
    return a


def predicted_labels(predictions):
    """Labels from labels (n,), scores (n, C) (argmax per row) or probabilities of class 1 (n, 1)."""
    p = _array(predictions, "predictions")
    if p.ndim == 1:
        return p
    if p.ndim == 2:
        return (p[:, 0] > 0.5).astype(np.int64) if p.shape[1] == 1 else np.argmax(p, axis=1)
    raise ValueError(f"predictions must be labels (n,) or scores (n, C), got shape {p.shape}")


def _pair(predictions, targets):
    pred = predicted_labels(predictions)
    true = _array(targets, "targets")
    if true.ndim == 2 and true.shape[1] == 1:
        true = true[:, 0]
    if true.ndim != 1:
        raise ValueError(f"targets must be labels of shape (n,), got shape {true.shape}")
    if len(pred) != len(true):
        raise ValueError(f"predictions hold {len(pred)} instances but targets {len(true)}")
    if len(true) == 0:
        raise ValueError("no instances: accuracy and error of an empty set are undefined")
    return pred, true


def accuracy(predictions, targets):
    """The fraction of instances whose predicted label equals the target: (1/n) sum_i [pred_i = y_i].

    predictions: labels (n,), scores (n, C), or probabilities of class 1 (n, 1); targets: labels (n,).
    """
    pred, true = _pair(predictions, targets)
    return float(np.mean(pred == true))


def zero_one_error(predictions, targets):
    """The test error under 0/1 loss: (1/n) sum_i [pred_i != y_i] = 1 - accuracy."""
    pred, true = _pair(predictions, targets)
    return float(np.mean(pred != true))


def confusion_matrix(targets, predictions, num_classes=None):
    """Counts C of shape (k, k) with C[i, j] = number of instances of true class i predicted as j.

    Rows are true classes, columns predicted ones (as scikit-learn); the diagonal holds the correct
    predictions. ``num_classes`` defaults to 1 + the largest label seen. Labels must be integers in
    [0, num_classes).
    """
    pred, true = _pair(predictions, targets)
    for name, labels in (("targets", true), ("predictions", pred)):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"confusion_matrix: {name} must be integer class labels")
    pred, true = pred.astype(np.int64), true.astype(np.int64)
    k = int(max(true.max(), pred.max())) + 1 if num_classes is None else int(num_classes)
    low = min(true.min(), pred.min())
    high = max(true.max(), pred.max())
    if low < 0 or high >= k:
        raise ValueError(f"confusion_matrix: labels must lie in [0, {k}), found {low} to {high}")
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def _delta(confidence):
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return 1.0 - confidence


def hoeffding_sample_size(eps, confidence=0.95):
    """The test-set size m that makes |test error - true error| <= eps with probability >= confidence.

    Hoeffding's inequality for the mean of m independent losses in [0, 1] gives
    P(|err_test - err| > eps) <= 2 exp(-2 m eps^2) =: delta, so m = ceil(ln(2 / delta) / (2 eps^2))
    with delta = 1 - confidence. For eps = 0.01 at 99% confidence, m = 26,492.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    return math.ceil(math.log(2.0 / _delta(confidence)) / (2.0 * eps ** 2))


def hoeffding_epsilon(m, confidence=0.95):
    """The half-width eps = sqrt(ln(2 / delta) / (2 m)) that m test instances guarantee at the given
    confidence (delta = 1 - confidence): the inverse of hoeffding_sample_size."""
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise ValueError(f"m must be a positive integer number of test instances, got {m}")
    return math.sqrt(math.log(2.0 / _delta(confidence)) / (2.0 * m))


def hoeffding_interval(error, m, confidence=0.95):
    """A confidence interval (low, high) for the true error from a test error measured on m instances:
    error -/+ eps with eps = sqrt(ln(2 / delta) / (2 m)), clipped to [0, 1].

    Holds with probability >= confidence for any distribution of the 0/1 losses (it is usually wider
    than a normal-approximation interval).
    """
    if not 0 <= error <= 1:
        raise ValueError(f"error must lie in [0, 1], got {error}")
    eps = hoeffding_epsilon(m, confidence)
    return max(0.0, error - eps), min(1.0, error + eps)


class BootstrapResult:
    """What ``bootstrap`` returns.

    ``estimates``: the statistic on each resample (n_resamples,); ``statistic``: its value on the
    data itself; ``mean`` and ``std`` (the bootstrap standard error) of the estimates; ``interval``:
    the percentile interval (low, high) at the requested confidence.
    """

    def __init__(self, estimates, statistic, confidence):
        self.estimates = estimates
        self.statistic = statistic
        self.confidence = confidence
        self.mean = float(np.mean(estimates))
        self.std = float(np.std(estimates, ddof=1)) if len(estimates) > 1 else 0.0
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(estimates, [tail, 100 - tail])
        self.interval = (float(low), float(high))

    def __repr__(self):
        return (f"BootstrapResult(statistic={self.statistic:.6g}, mean={self.mean:.6g}, std={self.std:.3g}, "
                f"{self.confidence:.0%} interval=({self.interval[0]:.6g}, {self.interval[1]:.6g}), "
                f"n_resamples={len(self.estimates)})")


def bootstrap(data, statistic=None, n_resamples=1000, seed=None, confidence=0.95):
    """Bootstrap estimates of a statistic: resample the n instances n times with replacement,
    ``n_resamples`` times, and compute the statistic on each resample.

    data: an array of per-instance values (statistic defaults to the mean; it gets one array), or a
    pair ``(targets, predictions)`` (statistic defaults to ``zero_one_error(predictions, targets)``;
    it gets the resampled targets and predictions). ``seed``: an int or numpy Generator (default:
    numpy's global generator). Returns a BootstrapResult (``.estimates``, ``.std``, ``.interval``).
    """
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    _delta(confidence)
    paired = isinstance(data, tuple)
    if paired:
        if len(data) != 2:
            raise ValueError(f"bootstrap: pass values, or a pair (targets, predictions); got a tuple of {len(data)}")
        true, pred = _array(data[0], "targets"), _array(data[1], "predictions")
        if len(true) != len(pred):
            raise ValueError(f"bootstrap: targets hold {len(true)} instances but predictions {len(pred)}")
        arrays = (true, pred)
        if statistic is None:
            def statistic(t, p):
                return zero_one_error(p, t)
    else:
        arrays = (_array(data, "data"),)
        if statistic is None:
            statistic = np.mean
    n = len(arrays[0])
    if n == 0:
        raise ValueError("bootstrap: no instances to resample")
    if seed is None:  # numpy's global generator, which np.random.seed sets
        draw = np.random.randint
    else:
        draw = (seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)).integers
    estimates = np.empty(int(n_resamples))
    for r in range(int(n_resamples)):
        index = draw(0, n, n)
        estimates[r] = statistic(*(a[index] for a in arrays))
    return BootstrapResult(estimates, float(statistic(*arrays)), confidence)
