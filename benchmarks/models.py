"""vugrad's two-layer MLP in tapegrad, in the numpy reference and in PyTorch, from one seeded init.

The model of vugrad's experiments/train_mlp.py: Linear(in, hidden) -> sigmoid -> Linear(hidden,
classes) -> log-softmax, summed cross-entropy (Select, Sum, times -1), plain SGD, batch 128, the
batches in order. Each trainer has the same interface:

    t = make_trainer("tapegrad", init, dtype=np.float32, lr=1e-4)
    x, y = t.prepare(xtrain, ytrain)      # the data in the library's own form (not timed)
    loss = t.step(x[0:128], y[0:128])     # forward, backward, SGD update; returns the loss
    seconds, mean_loss = t.epoch(x, y)    # one pass in order (or the first `steps` batches)
"""

import math
import time

import numpy as np

import numpy_reference as npref

BATCH = 128
LIBS = ("tapegrad", "numpy-ref", "torch")


def glorot_init(n_in, hidden, classes, seed=0):
    """float64 (w1, b1, w2, b2): Glorot-normal weights (std sqrt(2 / (in + out))) and zero biases,
    weights of shape (out, in) and biases (1, out), as vugrad's Linear."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((hidden, n_in)) * math.sqrt(2.0 / (n_in + hidden))
    w2 = rng.standard_normal((classes, hidden)) * math.sqrt(2.0 / (hidden + classes))
    return w1, np.zeros((1, hidden)), w2, np.zeros((1, classes))


def batch_slices(n, steps=None, batch=BATCH):
    """(from, to) of the batches of an epoch of n instances, in order; only the first `steps`."""
    bounds = [(fr, min(fr + batch, n)) for fr in range(0, n, batch)]
    return bounds if steps is None else bounds[:steps]


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


class Trainer:
    """Common epoch loop; subclasses define reset, prepare, loss, step and grad_array (or override
    forward_backward and gradients, as the numpy reference does)."""

    name = ""
    update = ""

    def epoch(self, x, y, steps=None):
        """One pass over (x, y) in order (the first `steps` batches if given): (seconds, mean loss)."""
        bounds = batch_slices(len(y), steps)
        total, count = 0.0, 0
        start = time.perf_counter()
        for fr, to in bounds:
            total += self.step(x[fr:to], y[fr:to])
            count += to - fr
        return time.perf_counter() - start, total / count

    def forward_backward(self, xb, yb):
        """Forward, loss and backward of one batch, gradients cleared after (no update)."""
        loss = self.loss(xb, yb)
        loss.backward()
        for p in self.params:
            p.grad = None
        return loss

    def gradients(self, xb, yb):
        """(loss, [float64 gradients of w1, b1, w2, b2]) on one batch, parameters unchanged."""
        loss = self.loss(xb, yb)
        value = loss.item()
        loss.backward()
        grads = [self.grad_array(p) for p in self.params]
        for p in self.params:
            p.grad = None
        return value, grads


class TapegradTrainer(Trainer):
    """tapegrad as a user writes it: vg.Linear modules, vg.sigmoid, vg.logsoftmax, vg.logceloss.

    update "manual" is train_mlp.py's ``p.value -= lr * p.grad`` then clearing the gradients;
    "sgd" is ``vg.optim.SGD`` (one engine call per step) with ``zero_grad()``; "jit" is the same
    step under ``vg.jit`` (recorded twice, then replayed in C++ with no Python per op).
    """

    name = "tapegrad"

    def __init__(self, init, dtype=np.float64, lr=0.01, update="manual"):
        import tapegrad as vg
        self.vg, self.dtype, self.lr, self.update = vg, np.dtype(dtype), lr, update
        w1, _, w2, _ = init
        self.layer1 = vg.Linear(w1.shape[1], w1.shape[0], dtype=self.dtype)
        self.layer2 = vg.Linear(w2.shape[1], w2.shape[0], dtype=self.dtype)
        self.params = [self.layer1.w, self.layer1.b, self.layer2.w, self.layer2.b]
        self.optimizer = vg.optim.SGD(self.params, lr=lr)
        self.reset(init)
        if update == "jit":
            self.jitted = vg.jit(self.sgd_step)

    def sgd_step(self, batch, yb):
        loss = self.vg.logceloss(self.vg.logsoftmax(self.layer2(self.vg.sigmoid(self.layer1(batch)))), yb)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss

    def reset(self, init):
        for p, v in zip(self.params, init):
            p.value[...] = v
            p.grad = None

    def prepare(self, x, y):
        return np.ascontiguousarray(x, dtype=self.dtype), np.ascontiguousarray(y, dtype=np.int64)

    def loss(self, xb, yb):
        vg = self.vg
        batch = vg.TensorNode(xb, requires_grad=False)
        return vg.logceloss(vg.logsoftmax(self.layer2(vg.sigmoid(self.layer1(batch)))), yb)

    def step(self, xb, yb):
        if self.update == "jit":
            return self.jitted(self.vg.TensorNode(xb, requires_grad=False), yb).item()
        loss = self.loss(xb, yb)
        value = loss.item()
        loss.backward()
        if self.update == "sgd":
            self.optimizer.step()
            self.optimizer.zero_grad()
        else:
            for p in self.params:
                p.value -= self.lr * p.grad
                p.grad = None
        return value

    @staticmethod
    def grad_array(p):
        return np.array(p.grad, dtype=np.float64)


class NumpyTrainer(Trainer):
    """The numpy reference (numpy_reference.py), float64 only, updated as vugrad's train_mlp.py."""

    name = "numpy-ref"
    update = "manual"

    def __init__(self, init, dtype=np.float64, lr=0.01, update="manual"):
        if np.dtype(dtype) != np.float64:
            raise ValueError("the numpy reference runs in float64 only, as vugrad")
        self.lr = lr
        self.model = npref.MLP(*[np.array(v, dtype=np.float64) for v in init])
        self.params = self.model.parameters()

    def reset(self, init):
        for p, v in zip(self.params, init):
            p.value[...] = v
            p.grad.fill(0.0)

    def prepare(self, x, y):
        return np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.int64)

    def loss(self, xb, yb):
        return npref.logceloss(self.model(npref.TensorNode(xb)), yb)

    def forward_backward(self, xb, yb):
        loss = self.loss(xb, yb)
        loss.backward()
        loss.zero_grad()
        return loss

    def step(self, xb, yb):
        loss = self.loss(xb, yb)
        value = float(loss.value)
        loss.backward()
        for p in self.params:
            p.value -= self.lr * p.grad
        loss.zero_grad()
        return value

    def gradients(self, xb, yb):
        loss = self.loss(xb, yb)
        value = float(loss.value)
        loss.backward()
        grads = [p.grad.copy() for p in self.params]
        loss.zero_grad()
        return value, grads


class TorchTrainer(Trainer):
    """PyTorch with explicit tensors: F.linear (x @ W.T + b), sigmoid, log_softmax, gather, sum * -1,
    backward, then ``p.add_(p.grad, alpha=-lr)`` under no_grad and ``p.grad = None``."""

    name = "torch"
    update = "manual"

    def __init__(self, init, dtype=np.float64, lr=0.01, update="manual"):
        import torch
        self.torch, self.lr = torch, lr
        self.tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]
        # biases as vectors (out,), F.linear's form; they are (1, out) elsewhere
        self.params = [torch.tensor(np.asarray(v).reshape(s), dtype=self.tdtype, requires_grad=True)
                       for v, s in zip(init, self._shapes(init))]
        self.F = torch.nn.functional

    @staticmethod
    def _shapes(init):
        return [v.shape if v.shape[0] != 1 else (v.shape[1],) for v in init]

    def reset(self, init):
        with self.torch.no_grad():
            for p, v in zip(self.params, init):
                p.copy_(self.torch.from_numpy(np.asarray(v)).reshape(p.shape))
                p.grad = None

    def prepare(self, x, y):
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32 if self.tdtype == torch.float32 else np.float64))
        return x, torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))

    def loss(self, xb, yb):
        torch, F = self.torch, self.F
        w1, b1, w2, b2 = self.params
        h = torch.sigmoid(F.linear(xb, w1, b1))
        logprobs = torch.log_softmax(F.linear(h, w2, b2), dim=1)
        return logprobs.gather(1, yb[:, None]).sum() * -1.0

    def step(self, xb, yb):
        loss = self.loss(xb, yb)
        value = loss.item()
        loss.backward()
        with self.torch.no_grad():
            for p in self.params:
                p.add_(p.grad, alpha=-self.lr)
                p.grad = None
        return value

    @staticmethod
    def grad_array(p):
        """float64 numpy copy; a bias (a 1-d tensor here) as the (1, n) row the others keep."""
        g = p.grad.double().numpy()
        return g.reshape(1, -1) if p.ndim == 1 else g


TRAINERS = {"tapegrad": TapegradTrainer, "numpy-ref": NumpyTrainer, "torch": TorchTrainer}


def make_trainer(library, init, dtype=np.float64, lr=0.01, update="manual"):
    return TRAINERS[library](init, dtype=dtype, lr=lr, update=update)
