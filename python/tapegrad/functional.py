"""Functions composed of ops: activations and losses of vugrad's course."""

from .ops import Exp, Log, Normalize, RowMax, RowSum, Select, Sigmoid, Sum, Unsqueeze


def sigmoid(x):
    """Element-wise logistic sigmoid of a TensorNode."""
    return Sigmoid.do_forward(x)


def _row_max(x):
    """Row maxima as an (n, 1) node; a constant shift, so it only adds numerical safety."""
    return Unsqueeze.do_forward(RowMax.do_forward(x), dim=1)


def softmax(x):
    """Row-wise softmax of an (n, m) node: exp(x) / sum(exp(x)) per row (shifted by the row max)."""
    return Normalize.do_forward(Exp.do_forward(x - _row_max(x)))


def logsoftmax(x):
    """Row-wise log of the softmax of an (n, m) node, by the log-sum-exp trick (stable)."""
    diff = x - _row_max(x)
    return diff - Unsqueeze.do_forward(Log.do_forward(RowSum.do_forward(Exp.do_forward(diff))), dim=1)


def logceloss(logprobs, targets):
    """Summed cross-entropy from log-probabilities (n, m) and integer class targets (n,): a 0-d node."""
    return Sum.do_forward(Select.do_forward(logprobs, indices=targets)) * -1.0


def celoss(outputs, targets):
    """Summed cross-entropy from probabilities (n, m) and integer class targets (n,): a 0-d node."""
    return logceloss(Log.do_forward(outputs), targets)
