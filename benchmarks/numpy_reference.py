"""A small numpy autodiff in the style of vugrad: the reference the benchmarks compare against.

The same design as the course library: a ``TensorNode`` holds a value, a gradient (zeros from the
start, as vugrad allocates it) and the ``OpNode`` that made it; an ``Op`` has static
``forward(context, *arrays, **kwargs)`` and ``backward(context, goutput)`` on numpy arrays and
``Op.do_forward(*nodes, **kwargs)`` records an OpNode. ``backward()`` walks the graph once in
reverse topological order. Only the ops vugrad's two-layer MLP needs are here, and everything is
float64, as in vugrad.

    mlp = MLP(2, 2, hidden=8)
    loss = logceloss(mlp(TensorNode(xb)), yb)
    loss.backward()
    for p in mlp.parameters(): p.value -= lr * p.grad
    loss.zero_grad()
"""

import numpy as np


class TensorNode:
    """A value in the graph, its gradient and the OpNode that made it (None for leaves)."""

    def __init__(self, value, source=None):
        self.value = np.asarray(value, dtype=np.float64)
        self.grad = np.zeros(self.value.shape)
        self.source = source

    @property
    def shape(self):
        return self.value.shape

    def __add__(self, other):
        return Add.do_forward(self, _constant(other))

    def __sub__(self, other):
        return Sub.do_forward(self, _constant(other))

    def __mul__(self, other):
        return Multiply.do_forward(self, _constant(other))

    def __matmul__(self, other):
        return MatrixMultiply.do_forward(self, _constant(other))

    def backward(self):
        """Gradients of this (one-element) node with respect to every node below it, added to .grad."""
        self.grad += 1.0
        for op_node in reversed(_topological(self)):
            op_node.backward()

    def zero_grad(self):
        """Set the gradients of this node and all nodes below it to zero."""
        self.grad.fill(0.0)
        for op_node in _topological(self):
            for node in op_node.inputs:
                node.grad.fill(0.0)


def _constant(x):
    return x if isinstance(x, TensorNode) else TensorNode(x)


def _topological(node):
    """The OpNodes below node, each after every OpNode that made one of its inputs (iterative DFS)."""
    order, seen = [], set()
    if node.source is None:
        return order
    stack = [(node.source, False)]
    while stack:
        op_node, expanded = stack.pop()
        if expanded:
            order.append(op_node)
            continue
        if id(op_node) in seen:
            continue
        seen.add(id(op_node))
        stack.append((op_node, True))
        for x in op_node.inputs:
            if x.source is not None and id(x.source) not in seen:
                stack.append((x.source, False))
    return order


class OpNode:
    """One application of an op: its class, input nodes, output node and saved context."""

    def __init__(self, op, context, inputs):
        self.op, self.context, self.inputs = op, context, inputs
        self.output = None

    def backward(self):
        grads = self.op.backward(self.context, self.output.grad)
        if not isinstance(grads, tuple):
            grads = (grads,)
        for node, g in zip(self.inputs, grads):
            node.grad += g


class Op:
    """Base class: static forward(context, *arrays, **kwargs) and backward(context, goutput)."""

    @classmethod
    def do_forward(cls, *inputs, **kwargs):
        context = {}
        output = cls.forward(context, *[x.value for x in inputs], **kwargs)
        op_node = OpNode(cls, context, inputs)
        op_node.output = TensorNode(output, source=op_node)
        return op_node.output


# ---- element-wise ----

class Add(Op):
    @staticmethod
    def forward(context, a, b):
        return a + b

    @staticmethod
    def backward(context, go):
        return go, go


class Sub(Op):
    @staticmethod
    def forward(context, a, b):
        return a - b

    @staticmethod
    def backward(context, go):
        return go, -go


class Multiply(Op):
    """a * b for equal shapes, or a times a 0-d b."""

    @staticmethod
    def forward(context, a, b):
        context["a"], context["b"] = a, b
        return a * b

    @staticmethod
    def backward(context, go):
        a, b = context["a"], context["b"]
        gb = go * a
        return go * b, (gb.sum() if b.ndim == 0 else gb)


class Sigmoid(Op):
    @staticmethod
    def forward(context, x):
        s = 1.0 / (1.0 + np.exp(-x))
        context["s"] = s
        return s

    @staticmethod
    def backward(context, go):
        s = context["s"]
        return go * s * (1.0 - s)


class Exp(Op):
    @staticmethod
    def forward(context, x):
        e = np.exp(x)
        context["e"] = e
        return e

    @staticmethod
    def backward(context, go):
        return go * context["e"]


class Log(Op):
    @staticmethod
    def forward(context, x):
        context["x"] = x
        return np.log(x)

    @staticmethod
    def backward(context, go):
        return go / context["x"]


# ---- matrices ----

class MatrixMultiply(Op):
    @staticmethod
    def forward(context, a, b):
        context["a"], context["b"] = a, b
        return a @ b

    @staticmethod
    def backward(context, go):
        return go @ context["b"].T, context["a"].T @ go


class BatchMM(Op):
    """A matrix (out, in) applied to a batch of row vectors (n, in): out (n, out)."""

    @staticmethod
    def forward(context, matrix, vectors):
        context["matrix"], context["vectors"] = matrix, vectors
        return vectors @ matrix.T

    @staticmethod
    def backward(context, go):
        return go.T @ context["vectors"], go @ context["matrix"]


# ---- shapes and reductions ----

class Expand(Op):
    """Repeat a size-1 axis ``dim`` ``repeats`` times."""

    @staticmethod
    def forward(context, x, *, dim, repeats):
        context["dim"] = dim
        return np.repeat(x, repeats, axis=dim)

    @staticmethod
    def backward(context, go):
        return go.sum(axis=context["dim"], keepdims=True)


class Unsqueeze(Op):
    @staticmethod
    def forward(context, x, *, dim):
        context["shape"] = x.shape
        return np.expand_dims(x, dim)

    @staticmethod
    def backward(context, go):
        return go.reshape(context["shape"])


class RowSum(Op):
    """Sum of each row: (n, m) -> (n,)."""

    @staticmethod
    def forward(context, x):
        context["m"] = x.shape[1]
        return x.sum(axis=1)

    @staticmethod
    def backward(context, go):
        return np.repeat(go[:, None], context["m"], axis=1)


class RowMax(Op):
    """Maximum of each row: (n, m) -> (n,); the gradient goes to the first arg-max of the row."""

    @staticmethod
    def forward(context, x):
        idx = x.argmax(axis=1)
        context["idx"], context["shape"] = idx, x.shape
        return x[np.arange(x.shape[0]), idx]

    @staticmethod
    def backward(context, go):
        g = np.zeros(context["shape"])
        g[np.arange(len(go)), context["idx"]] = go
        return g


class Sum(Op):
    """Sum of all elements: a 0-d result."""

    @staticmethod
    def forward(context, x):
        context["shape"] = x.shape
        return np.asarray(x.sum())

    @staticmethod
    def backward(context, go):
        return np.full(context["shape"], float(go))


class Select(Op):
    """x[i, indices[i]] for each row i: (n, m) -> (n,)."""

    @staticmethod
    def forward(context, x, *, indices):
        rows = np.arange(x.shape[0])
        context["rows"], context["indices"], context["shape"] = rows, indices, x.shape
        return x[rows, indices]

    @staticmethod
    def backward(context, go):
        g = np.zeros(context["shape"])
        g[context["rows"], context["indices"]] = go
        return g


# ---- the MLP of vugrad's train_mlp.py ----

def sigmoid(x):
    return Sigmoid.do_forward(x)


def logsoftmax(x):
    """log softmax of each row, stabilised by the row maximum, from the primitive ops."""
    n, m = x.shape
    xmax = Expand.do_forward(Unsqueeze.do_forward(RowMax.do_forward(x), dim=1), dim=1, repeats=m)
    diff = x - xmax
    logsum = Log.do_forward(RowSum.do_forward(Exp.do_forward(diff)))
    return diff - Expand.do_forward(Unsqueeze.do_forward(logsum, dim=1), dim=1, repeats=m)


def logceloss(logprobs, targets):
    """Summed cross-entropy: -(sum of the log-probabilities of the targets)."""
    return Sum.do_forward(Select.do_forward(logprobs, indices=targets)) * -1.0


class Linear:
    """y = x W^T + b, with W (out, in) and b (1, out) expanded over the batch."""

    def __init__(self, w, b):
        self.w, self.b = TensorNode(w), TensorNode(b)

    def __call__(self, x):
        n = x.shape[0]
        return BatchMM.do_forward(self.w, x) + Expand.do_forward(self.b, dim=0, repeats=n)

    def parameters(self):
        return [self.w, self.b]


class MLP:
    """Linear -> sigmoid -> Linear -> logsoftmax, from given initial weights (arrays of any float dtype)."""

    def __init__(self, w1, b1, w2, b2):
        self.layer1, self.layer2 = Linear(w1, b1), Linear(w2, b2)

    def __call__(self, x):
        return logsoftmax(self.layer2(sigmoid(self.layer1(x))))

    def parameters(self):
        return self.layer1.parameters() + self.layer2.parameters()
