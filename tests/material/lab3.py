"""Lab 3 ported: part 1, a custom autograd Function for f(x1, x2) = (x1 - 6)^2 + x2^2 - x1 x2 and
gradient descent on it; part 2, the 2-2-1 network (tanh hidden, sigmoid output, binary
cross-entropy) on the five points, with gradients by hand, by autograd and by finite differences,
ten random restarts and the decision boundary.

Every function takes ``lib`` (see material/__init__.py) and uses only PyTorch's names through it.
"""

import warnings

import numpy as np

# The five-point data set: the origin is class 1, its four neighbours class 0.
FIVE_X = [[0.0, 0.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0], [0.0, 1.0]]
FIVE_Y = [1.0, 0.0, 0.0, 0.0, 0.0]


# ---------------------------------------------------------------------------------------------
# Part 1: a Function with its own backward, and gradient descent on it
# ---------------------------------------------------------------------------------------------

def make_my_function(lib):
    """The lab's MyFunction class: apply(x) with x of shape (2,) gives f(x[0], x[1]), shape ()."""
    torch = lib.torch

    class MyFunction(lib.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x[0] - 6) ** 2 + x[1] ** 2 - x[0] * x[1]

        @staticmethod
        def backward(ctx, grad_output):
            x, = ctx.saved_tensors
            df_dx1 = 2 * (x[0] - 6) - x[1]
            df_dx2 = 2 * x[1] - x[0]
            return grad_output * torch.tensor([df_dx1, df_dx2])

    return MyFunction


def value_and_gradient(lib, point=(6.0, 6.0)):
    """f and its gradient at ``point``, once through MyFunction.apply and once through an instance.

    Returns {"value", "grad", "instance_value", "instance_grad", "has_grad_fn"}; grads as lists of 2.
    """
    torch = lib.torch
    MyFunction = make_my_function(lib)

    x = torch.tensor(list(point), requires_grad=True)
    y = MyFunction.apply(x)
    y.backward()

    # Students also write it this way; PyTorch warns that instances are deprecated, which is not
    # what this port checks.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        func = MyFunction()
    x2 = torch.tensor(list(point), requires_grad=True)
    y2 = func.apply(x2)
    y2.backward()

    return {"value": y.item(), "grad": x.grad.tolist(), "instance_value": y2.item(),
            "instance_grad": x2.grad.tolist(), "has_grad_fn": y.grad_fn is not None}


def descent_path(lib, step_sizes=(1 / 2, 1 / 3, 1 / 4), start=(6.0, 6.0)):
    """The points visited by gradient descent with the given step sizes: a list of [x1, x2]."""
    torch = lib.torch
    MyFunction = make_my_function(lib)

    x = torch.tensor(list(start), requires_grad=True)
    path = [x.tolist()]
    for lr in step_sizes:
        y = MyFunction.apply(x)
        y.backward()
        with torch.no_grad():
            x -= lr * x.grad
        x.grad.zero_()
        path.append(x.tolist())
    return path


def make_optimizer(lib):
    """The lab's constant-step optimiser class, with early stopping on the improvement."""
    torch = lib.torch

    class ConstantStepGD:
        def __init__(self, params, lr=0.1, tol=1e-4, clear="zero"):
            self.params = list(params)
            self.lr = lr
            self.tol = tol
            self.clear = clear

        def zero_grad(self):
            for p in self.params:
                if p.grad is None:
                    continue
                if self.clear == "zero":
                    p.grad.zero_()
                else:
                    p.grad = None

        def step(self):
            with torch.no_grad():
                for p in self.params:
                    p.data -= self.lr * p.grad

        def minimize(self, f, max_iter=1000):
            """Steps until f improves by less than tol; returns (iterations, list of f values)."""
            history = []
            for it in range(max_iter):
                self.zero_grad()
                loss = f(*self.params)
                history.append(loss.item())
                if len(history) > 1 and history[-2] - history[-1] < self.tol:
                    return it, history
                loss.backward()
                self.step()
            return max_iter, history

    return ConstantStepGD


def minimize_with_optimizer(lib, lr=0.1, tol=1e-4, clear="zero"):
    """Runs ConstantStepGD on f from (6, 6); returns {"iterations", "x", "history"}."""
    torch = lib.torch
    MyFunction = make_my_function(lib)
    ConstantStepGD = make_optimizer(lib)

    x = torch.tensor([6.0, 6.0], requires_grad=True)
    opt = ConstantStepGD([x], lr=lr, tol=tol, clear=clear)
    iterations, history = opt.minimize(MyFunction.apply)
    return {"iterations": iterations, "x": x.tolist(), "history": history}


# ---------------------------------------------------------------------------------------------
# Part 2: the 2-2-1 network on the five points
# ---------------------------------------------------------------------------------------------

def five_points(lib, dtype=None):
    """The data as tensors: x (5, 2), y (5,)."""
    torch = lib.torch
    dtype = dtype if dtype is not None else torch.float
    return torch.tensor(FIVE_X, dtype=dtype), torch.tensor(FIVE_Y, dtype=dtype)


def predict(lib, x, w1, b1, w2, b2):
    """P(class 1): x (n, 2), w1 (2, 2), b1 (2,), w2 (2,), b2 (1,) -> (n,)."""
    torch = lib.torch
    h = torch.tanh(x @ w1 + b1)
    return torch.sigmoid(h @ w2 + b2)


def bce(lib, p, y):
    """Mean binary cross-entropy of probabilities p (n,) against labels y (n,), shape ()."""
    torch = lib.torch
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def hand_gradients(lib, x, y, w1, b1, w2, b2):
    """The gradients of bce(predict(x, ...), y) worked out by hand: [gw1, gb1, gw2, gb2]."""
    torch = lib.torch
    n = x.shape[0]
    h = torch.tanh(x @ w1 + b1)
    p = torch.sigmoid(h @ w2 + b2)
    dz2 = (p - y) / n                      # d loss / d pre-sigmoid, (n,)
    gw2 = h.T @ dz2
    gb2 = dz2.sum(dim=0, keepdim=True)
    dz1 = dz2.unsqueeze(1) * w2 * (1 - h ** 2)   # d loss / d pre-tanh, (n, 2)
    gw1 = x.T @ dz1
    gb1 = dz1.sum(dim=0)
    return [gw1, gb1, gw2, gb2]


def autograd_gradients(lib, x, y, params):
    """The same gradients by backward(): params are leaves with requires_grad=True."""
    loss = bce(lib, predict(lib, x, *params), y)
    loss.backward()
    return [p.grad for p in params]


def finite_differences(lib, x, y, params, eps=1e-6):
    """Central differences of the loss in every parameter element, shaped like the parameters."""
    torch = lib.torch
    grads = []
    for k, p in enumerate(params):
        values = []
        for i in range(p.numel()):
            pos = p.detach().clone().flatten()
            neg = pos.clone()
            pos[i] = pos[i] + eps
            neg[i] = neg[i] - eps
            args_pos = list(params)
            args_neg = list(params)
            args_pos[k] = pos.view(*p.shape)
            args_neg[k] = neg.view(*p.shape)
            with torch.no_grad():
                f_pos = bce(lib, predict(lib, x, *args_pos), y).item()
                f_neg = bce(lib, predict(lib, x, *args_neg), y).item()
            values.append((f_pos - f_neg) / (2 * eps))
        grads.append(torch.tensor(values, dtype=p.dtype).view(*p.shape))
    return grads


def three_gradients(lib, weights):
    """Hand, autograd and finite-difference gradients in float64 at the given numpy weights.

    weights: [w1 (2, 2), b1 (2,), w2 (2,), b2 (1,)] float64 arrays. Returns a dict of lists of
    numpy arrays, plus the loss.
    """
    torch = lib.torch
    x, y = five_points(lib, dtype=torch.float64)
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    hand = hand_gradients(lib, x, y, *params)
    auto = autograd_gradients(lib, x, y, params)
    fd = finite_differences(lib, x, y, params)
    with torch.no_grad():
        loss = float(bce(lib, predict(lib, x, *params), y))
    return {"loss": loss,
            "hand": [g.detach().numpy() for g in hand],
            "autograd": [g.numpy() for g in auto],
            "fd": [g.numpy() for g in fd]}


def random_params(lib):
    """Standard-normal starting weights [w1, b1, w2, b2], leaves that require grad."""
    torch = lib.torch
    return [torch.randn(2, 2).requires_grad_(), torch.randn(2).requires_grad_(),
            torch.randn(2).requires_grad_(), torch.randn(1).requires_grad_()]


def train(lib, x, y, params, lr=1.0, steps=100):
    """Plain gradient descent in place on params; returns the losses, a list of 0-d tensors."""
    torch = lib.torch
    history = []
    for step in range(steps):
        loss = bce(lib, predict(lib, x, *params), y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad.zero_()
        history.append(loss.detach())
    return history


def random_restarts(lib, restarts=10, steps=100, lr=1.0):
    """Ten seeded restarts of 100 steps; returns {"losses", "best_loss", "best_params"}."""
    torch = lib.torch
    x, y = five_points(lib)
    losses, best_params = [], None
    for seed in range(restarts):
        torch.manual_seed(seed)
        params = random_params(lib)
        train(lib, x, y, params, lr=lr, steps=steps)
        with torch.no_grad():
            final = bce(lib, predict(lib, x, *params), y).item()
        if not losses or final < min(losses):
            best_params = params
        losses.append(final)
    return {"losses": losses, "best_loss": min(losses), "best_params": best_params}


def train_from(lib, weights, lr=1.0, steps=100):
    """100 steps from given float32 numpy weights; returns (losses as 0-d tensors, final params)."""
    torch = lib.torch
    x, y = five_points(lib)
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    history = train(lib, x, y, params, lr=lr, steps=steps)
    return history, params


def decision_boundary(lib, params, path, history=None):
    """P(class 1) on a 50 x 50 grid over [-2, 2]^2, drawn with matplotlib into ``path``.

    Tensors go straight to matplotlib: the grid, the probabilities, the data and (if given) the
    loss history, a list of 0-d tensors. Returns (np.asarray(probs), probs.numpy()), both (50, 50).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch = lib.torch
    x, y = five_points(lib)
    grid = torch.linspace(-2, 2, 50)
    g1, g2 = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([g1.flatten(), g2.flatten()], dim=1)
    with torch.no_grad():
        probs = predict(lib, points, *params).view(50, 50)

    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].contourf(g1, g2, probs, levels=np.linspace(0, 1, 11), cmap="RdBu")
    axes[0].contour(g1, g2, probs, levels=[0.5], colors="k")
    axes[0].scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu", edgecolors="k")
    if history is not None:
        axes[1].plot(history)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("loss")
    fig.savefig(path)
    plt.close(fig)
    return np.asarray(probs), probs.numpy()
