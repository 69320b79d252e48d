"""numpy references of the engine's ops and the input domains they are tested on, shared by the op
table (test_ops.py), the functional tests and the fuzz suite (test_fuzz.py): one reference per op.

UNARY maps each element-wise unary op (by its engine name) to its numpy forward, its gradient given
the upstream G, and the domain on which its gradient is smooth; BINARY and REDUCTIONS do the same
for the broadcasting binary ops and the reductions.
"""

from collections import namedtuple

import numpy as np

import tapegrad as vg


# ---- input domains: (rng, shape) -> float64 array ----

def real(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(rng, shape):
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def exponent(rng, shape):
    return rng.uniform(-2.0, 2.0, shape)


def distinct(rng, shape):
    """Values at least 0.2 apart, so a maximum is unique and stays put under finite differences."""
    n = int(np.prod(shape, dtype=np.int64))
    return rng.permutation(n).reshape(shape) * 0.3 + rng.uniform(0.0, 0.1, shape) - 0.15 * n


def on_integers(rng, shape):
    """Integers plus [0, 0.1): any value is at least 0.4 from every value of `on_half_integers`."""
    return rng.integers(-3, 3, shape) + rng.uniform(0.0, 0.1, shape)


def on_half_integers(rng, shape):
    """Half-integers plus [0, 0.1): either side of an `on_integers` value, never within 0.4 of it."""
    return rng.integers(-3, 3, shape) + 0.5 + rng.uniform(0.0, 0.1, shape)


def probability(rng, shape):
    """Probabilities away from 0 and 1, where the logs of a binary cross-entropy are smooth."""
    return rng.uniform(0.1, 0.9, shape)


def unit_interval(rng, shape):
    return rng.uniform(0.0, 1.0, shape)

# ---- numpy references shared by the op table and the property tests ----

def sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + exp(-x)) without overflow


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    return x - logsumexp(x, axis=axis, keepdims=True)


def scattered(G, x, key):
    """Zeros of x's shape with G added at x[key]; repeated positions add up (np.add.at)."""
    out = np.zeros(x.shape)
    np.add.at(out, key, G)
    return out


def restored(G, shape, axis, keepdims):
    """The upstream gradient of a reduction with its reduced axes back as size 1 (broadcasts to `shape`)."""
    if keepdims:
        return G
    if axis is None:
        return np.reshape(G, (1,) * len(shape))
    return np.expand_dims(G, axis)


def logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def count(x, axis):
    """How many elements each output of a reduction over `axis` combines."""
    return x.size // np.sum(x, axis=axis, keepdims=True).size


def variance(x, axis=None, keepdims=False, ddof=0):
    return np.var(x, axis=axis, keepdims=keepdims, ddof=ddof)


def softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


# Error scales of a comparison in float32/float64, given the inputs and the output: errors are
# measured relative to |out| or to 1 + |out|.
def rel(*arrays_out):
    return np.abs(arrays_out[-1])


def rel_plus_one(*arrays_out):
    return 1.0 + np.abs(arrays_out[-1])


Unary = namedtuple("Unary", "forward grad domain scale smooth")
UNARY = {
    # engine name: numpy forward, gradient (G, x), domain of the op table's gradient tests, error scale of
    # the fuzz suite's comparisons (None: exact), where the fuzz suite checks gradients (None: everywhere)
    "negative": Unary(np.negative, lambda G, x: -G, real, None, None),
    "exp": Unary(np.exp, lambda G, x: G * np.exp(x), real, rel, lambda x: np.all(x < 20)),
    "log": Unary(np.log, lambda G, x: G / x, positive, rel_plus_one, lambda x: np.all(x > 0.05)),
    "log1p": Unary(np.log1p, lambda G, x: G / (1 + x), lambda rng, shape: rng.uniform(-0.6, 2.0, shape), rel_plus_one,
                   lambda x: np.all(x > -0.95)),
    "sqrt": Unary(np.sqrt, lambda G, x: G / (2 * np.sqrt(x)), positive, rel, lambda x: np.all(x > 0.05)),
    "abs": Unary(np.abs, lambda G, x: G * np.sign(x), away_from_zero, None, None),
    "square": Unary(np.square, lambda G, x: 2 * G * x, real, rel, None),
    "sigmoid": Unary(sigmoid, lambda G, x: G * sigmoid(x) * (1 - sigmoid(x)), real, rel_plus_one, None),
    "tanh": Unary(np.tanh, lambda G, x: G * (1 - np.tanh(x) ** 2), real, rel_plus_one, None),
    "relu": Unary(lambda x: np.maximum(x, 0.0), lambda G, x: G * (x > 0), away_from_zero, None, None),
    "softplus": Unary(softplus, lambda G, x: G * sigmoid(x), lambda rng, shape: 3.0 * rng.standard_normal(shape),
                      rel_plus_one, None),
}


REDUCTIONS = [
    # op, function, numpy forward, gradient from the restored upstream Gk, domain
    (vg.Sum, vg.sum, np.sum, lambda Gk, x, axis: np.broadcast_to(Gk, x.shape), real),
    (vg.Mean, vg.mean, np.mean, lambda Gk, x, axis: np.broadcast_to(Gk, x.shape) / count(x, axis), real),
    (vg.Max, vg.max, np.max, lambda Gk, x, axis: Gk * (x == np.max(x, axis=axis, keepdims=True)), distinct),
    (vg.Min, vg.min, np.min, lambda Gk, x, axis: Gk * (x == np.min(x, axis=axis, keepdims=True)), distinct),
    (vg.LogSumExp, vg.logsumexp, logsumexp,
     lambda Gk, x, axis: Gk * np.exp(x - logsumexp(x, axis=axis, keepdims=True)), real),
    (vg.Var, vg.var, variance,
     lambda Gk, x, axis: 2 * Gk * (x - np.mean(x, axis=axis, keepdims=True)) / count(x, axis), real),
]

BINARY = [
    # op, function, numpy forward, numpy backward (before reduction to the input shapes), domains
    (vg.Add, vg.add, np.add, lambda G, a, b: (G, G), (real, real)),
    (vg.Sub, vg.subtract, np.subtract, lambda G, a, b: (G, -G), (real, real)),
    (vg.Multiply, vg.multiply, np.multiply, lambda G, a, b: (G * b, G * a), (real, real)),
    (vg.Divide, vg.divide, np.divide, lambda G, a, b: (G / b, -G * a / b**2), (real, away_from_zero)),
    (vg.Power, vg.power, np.power, lambda G, a, b: (G * b * a ** (b - 1), G * a**b * np.log(a)), (positive, exponent)),
    # no ties: every value of one operand is at least 0.4 from every value of the other
    (vg.Maximum, vg.maximum, np.maximum, lambda G, a, b: (G * (a > b), G * (b > a)), (on_integers, on_half_integers)),
    (vg.Minimum, vg.minimum, np.minimum, lambda G, a, b: (G * (a < b), G * (b < a)), (on_half_integers, on_integers)),
]


def reduce_to_shape(g, shape, reduce=np.sum):
    """Reduce g (of a broadcast shape) over the axes along which an input of `shape` was broadcast,
    with `reduce` (np.sum for gradients, np.any for masks): the inverse of broadcasting."""
    g = np.asarray(g)
    while g.ndim > len(shape):
        g = reduce(g, axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = reduce(g, axis=axis, keepdims=True)
    return g.reshape(shape)


def sum_to_shape(g, shape):
    """Reduce an upstream gradient over the axes along which an input of `shape` was broadcast."""
    return reduce_to_shape(g, shape)


# ---- convolution and pooling (NCHW), written as loops over the window's taps ----

def out_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """PyTorch's output size of a window: floor (or ceil) of (size + 2 p - d (k - 1) - 1) / s, plus 1."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    n = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (n - 1) * stride >= size + padding:
        n -= 1
    return n


def _taps(shape, kernel, stride, padding, dilation, ceil_mode=False):
    """(output size, right-padding, [(i, j, rows slice, cols slice)]) of a window over the last two
    axes: slicing the padded input with a tap's slices gives that tap's value for every output."""
    (oh, ow) = [out_size(shape[a], kernel[a - 2], stride[a - 2], padding[a - 2], dilation[a - 2], ceil_mode)
                for a in (2, 3)]
    extra = [max(0, (o - 1) * s + d * (k - 1) + 1 - (n + p)) for o, s, d, k, n, p in
             zip((oh, ow), stride, dilation, kernel, shape[2:], padding)]
    taps = [(i, j, slice(i * dilation[0], i * dilation[0] + stride[0] * (oh - 1) + 1, stride[0]),
             slice(j * dilation[1], j * dilation[1] + stride[1] * (ow - 1) + 1, stride[1]))
            for i in range(kernel[0]) for j in range(kernel[1])]
    return (oh, ow), extra, taps


def _padded(x, padding, extra, fill):
    return np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0] + extra[0]), (padding[1], padding[1] + extra[1])),
                  constant_values=fill)


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """torch.nn.functional.conv2d: x (N, C, H, W), w (O, C / groups, kH, kW), b (O,) or None."""
    (oh, ow), _, taps = _taps(x.shape, w.shape[2:], stride, padding, dilation)
    xp = _padded(x, padding, (0, 0), 0.0)
    cg, og = w.shape[1], w.shape[0] // groups
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for g in range(groups):
        ci, co = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        for i, j, rows, cols in taps:
            out[:, co] += np.einsum("ncyx,oc->noyx", xp[:, ci, rows, cols], w[co, :, i, j])
    return out if b is None else out + b[None, :, None, None]


def conv2d_grads(G, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Gradients of sum(conv2d(x, w, b) * G): for x, w and (if given) b."""
    _, _, taps = _taps(x.shape, w.shape[2:], stride, padding, dilation)
    xp = _padded(x, padding, (0, 0), 0.0)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    cg, og = w.shape[1], w.shape[0] // groups
    for g in range(groups):
        ci, co = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        for i, j, rows, cols in taps:
            dw[co, :, i, j] += np.einsum("noyx,ncyx->oc", G[:, co], xp[:, ci, rows, cols])
            dxp[:, ci, rows, cols] += np.einsum("noyx,oc->ncyx", G[:, co], w[co, :, i, j])
    dx = dxp[:, :, padding[0]:padding[0] + x.shape[2], padding[1]:padding[1] + x.shape[3]]
    return (dx, dw) if b is None else (dx, dw, G.sum(axis=(0, 2, 3)))


def max_pool2d(x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """torch.nn.functional.max_pool2d (padding never wins)."""
    _, extra, taps = _taps(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    xp = _padded(x, padding, extra, -np.inf)
    return np.max([xp[:, :, rows, cols] for _, _, rows, cols in taps], axis=0)


def max_pool2d_grad(G, x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """G at each window's first maximum (taps in reading order), summed where windows overlap."""
    _, extra, taps = _taps(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    xp = _padded(x, padding, extra, -np.inf)
    first = np.argmax([xp[:, :, rows, cols] for _, _, rows, cols in taps], axis=0)
    dxp = np.zeros_like(xp)
    for t, (_, _, rows, cols) in enumerate(taps):
        dxp[:, :, rows, cols] += np.where(first == t, G, 0.0)
    return dxp[:, :, padding[0]:padding[0] + x.shape[2], padding[1]:padding[1] + x.shape[3]]


def avg_divisors(shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """PyTorch's divisor per output position: the window clipped to the padded input (or to the
    input without count_include_pad), or divisor_override; inf for a window without input pixels,
    whose average is 0."""
    (oh, ow), _, _ = _taps(shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    sizes = []
    for a, n_out in ((0, oh), (1, ow)):
        start = np.arange(n_out) * stride[a] - padding[a]
        end = np.minimum(start + kernel_size[a], shape[2 + a] + padding[a])
        inside = np.minimum(end, shape[2 + a]) - np.maximum(start, 0)
        sizes.append((end - start, inside))
    empty = np.outer(sizes[0][1] <= 0, sizes[1][1] <= 0) | (sizes[0][1] <= 0)[:, None] | (sizes[1][1] <= 0)[None, :]
    if divisor_override:
        divisor = np.full((oh, ow), float(divisor_override))
    else:
        which = 0 if count_include_pad else 1
        divisor = np.outer(sizes[0][which], sizes[1][which]).astype(float)
    # a window without input pixels (only possible on an empty plane) averages to 0, as PyTorch's
    return np.where(empty, np.inf, divisor)


def avg_pool2d(x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True, divisor_override=None):
    """torch.nn.functional.avg_pool2d."""
    _, extra, taps = _taps(x.shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    xp = _padded(x, padding, extra, 0.0)
    total = np.sum([xp[:, :, rows, cols] for _, _, rows, cols in taps], axis=0)
    return total / avg_divisors(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool2d_grad(G, x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True,
                    divisor_override=None):
    _, extra, taps = _taps(x.shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    xp = _padded(x, padding, extra, 0.0)
    share = G / avg_divisors(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    dxp = np.zeros_like(xp)
    for _, _, rows, cols in taps:
        dxp[:, :, rows, cols] += share
    return dxp[:, :, padding[0]:padding[0] + x.shape[2], padding[1]:padding[1] + x.shape[3]]


def adaptive_bins(size, out):
    """Bin i of `out` over `size` pixels: [floor(i size / out), ceil((i + 1) size / out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def adaptive_avg_pool2d(x, output_size):
    rows, cols = adaptive_bins(x.shape[2], output_size[0]), adaptive_bins(x.shape[3], output_size[1])
    out = np.zeros(x.shape[:2] + tuple(output_size))
    for a, (r0, r1) in enumerate(rows):
        for b, (c0, c1) in enumerate(cols):
            out[:, :, a, b] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


def adaptive_avg_pool2d_grad(G, x, output_size):
    rows, cols = adaptive_bins(x.shape[2], output_size[0]), adaptive_bins(x.shape[3], output_size[1])
    dx = np.zeros_like(x)
    for a, (r0, r1) in enumerate(rows):
        for b, (c0, c1) in enumerate(cols):
            dx[:, :, r0:r1, c0:c1] += G[:, :, a, b][:, :, None, None] / ((r1 - r0) * (c1 - c0))
    return dx


def _pad_slices(shape, pad):
    """Per axis: (before, after) kept non-negative for np.pad, and the crop of negative amounts."""
    widths, crops = [(0, 0)] * len(shape), [slice(None)] * len(shape)
    for k in range(len(pad) // 2):
        axis = len(shape) - 1 - k
        lo, hi = pad[2 * k], pad[2 * k + 1]
        widths[axis] = (max(lo, 0), max(hi, 0))
        size = shape[axis] + max(lo, 0) + max(hi, 0)
        crops[axis] = slice(max(-lo, 0), size - max(-hi, 0))
    return widths, tuple(crops)


def pad(x, pad, value=0.0):
    """torch.nn.functional.pad in constant mode: (before, after) pairs from the last axis; negative crops."""
    if np.ndim(x) == 0:
        return np.array(x, dtype=float)
    widths, crops = _pad_slices(x.shape, pad)
    return np.pad(x, widths, constant_values=value)[crops]


def pad_grad(G, x, pad):
    widths, crops = _pad_slices(x.shape, pad)
    full = np.zeros(np.pad(x, widths).shape)
    full[crops] = G
    inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
    return full[inner]
