"""The homework ported: tensor basics (dtypes, grad_fn, leaves, .data updates, the version error of
an in-place change) and finite-difference vs analytic gradients of a one-hidden-layer tanh network
in float64.
"""

import numpy as np


def tensor_basics(lib):
    """What the homework's first cells show, as a dict of observations."""
    torch = lib.torch
    seen = {}

    # Integers cannot require gradients; a float dtype can.
    try:
        torch.tensor([1, 2], requires_grad=True)
        seen["int_requires_grad"] = "no error"
    except RuntimeError as e:
        seen["int_requires_grad"] = "RuntimeError"
        seen["int_requires_grad_message"] = str(e)
    seen["int_dtype_is_long"] = torch.tensor([1, 2]).dtype == torch.long
    x = torch.tensor([1, 2], dtype=torch.float, requires_grad=True)
    seen["float_dtype_is_float32"] = x.dtype == torch.float32
    seen["float_requires_grad"] = x.requires_grad

    # Results of ops know their grad function, leaves do not.
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0, 4.0], requires_grad=True)
    c = a * b
    d = c.sum()
    seen["leaf_grad_fn_is_none"] = a.grad_fn is None
    seen["result_has_grad_fn"] = c.grad_fn is not None and d.grad_fn is not None
    seen["a_is_leaf"] = a.is_leaf
    seen["c_is_leaf"] = c.is_leaf
    seen["grad_before_backward"] = a.grad
    d.backward()
    seen["a_grad"] = a.grad.tolist()
    seen["b_grad"] = b.grad.tolist()

    # Updating a leaf through .data is not recorded: it stays a leaf with its grad.
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = (w ** 2).sum()
    loss.backward()
    w.data = w.data - 0.1 * w.grad
    seen["w_after_update"] = w.tolist()
    seen["w_still_leaf"] = w.is_leaf and w.grad_fn is None and w.requires_grad
    return seen


def version_experiment(lib):
    """y = exp(w); l = (y - a)**2; y /= 2; l.backward(): returns the RuntimeError's message.

    exp saves its output for the backward, so changing y in place must be reported. Returns
    None when no error is raised.
    """
    torch = lib.torch
    w = torch.tensor(1.0, requires_grad=True)
    a = torch.tensor(3.0)
    y = torch.exp(w)
    l = (y - a) ** 2
    y /= 2
    try:
        l.backward()
    except RuntimeError as e:
        return str(e)
    return None


def make_network_weights(hidden, inputs=3, seed=0):
    """float64 numpy weights [w1 (inputs, hidden), b1 (hidden,), w2 (hidden,), b2 (1,)] and data
    x (12, inputs), y (12,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((inputs, hidden)) / np.sqrt(inputs),
               0.1 * rng.standard_normal(hidden),
               rng.standard_normal(hidden) / np.sqrt(hidden),
               0.1 * rng.standard_normal(1)]
    x = rng.standard_normal((12, inputs))
    y = (rng.random(12) < 0.5).astype(np.float64)
    return weights, x, y


def loss_fn(lib, x, y, w1, b1, w2, b2):
    """Binary cross-entropy of sigmoid(tanh(x w1 + b1) w2 + b2) against y, shape ()."""
    torch = lib.torch
    p = torch.sigmoid(torch.tanh(x @ w1 + b1) @ w2 + b2)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def gradient_table(lib, hidden, eps_values=(1e-2, 1e-3, 1e-5), entries=20, seed=0):
    """Finite differences vs autograd in float64 for one hidden size.

    Central differences are taken at up to ``entries`` elements of each parameter (evenly spread;
    all of them for small parameters) to keep the 500-unit network fast. Returns
    {"analytic": [numpy grads], "fd": {eps: [numpy arrays of the checked elements]},
     "errors": {eps: [max |fd - analytic| per parameter]}, "checked": [index arrays]}.
    """
    torch = lib.torch
    weights, x_np, y_np = make_network_weights(hidden, seed=seed)
    x = torch.tensor(x_np)
    y = torch.tensor(y_np)
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    loss = loss_fn(lib, x, y, *params)
    loss.backward()
    analytic = [p.grad.numpy() for p in params]

    checked = [np.unique(np.linspace(0, p.numel() - 1, min(entries, p.numel())).astype(int))
               for p in params]
    fd, errors = {}, {}
    for eps in eps_values:
        fd[eps], errors[eps] = [], []
        for k, p in enumerate(params):
            estimates = []
            for i in checked[k]:
                i = int(i)
                pos = p.detach().clone().flatten()
                neg = p.detach().clone().flatten()
                pos[i] = pos[i] + eps
                neg[i] = neg[i] - eps
                args_pos, args_neg = list(params), list(params)
                args_pos[k] = pos.view(*p.shape)
                args_neg[k] = neg.view(*p.shape)
                with torch.no_grad():
                    diff = loss_fn(lib, x, y, *args_pos) - loss_fn(lib, x, y, *args_neg)
                estimates.append(diff.item() / (2 * eps))
            estimates = np.array(estimates)
            fd[eps].append(estimates)
            errors[eps].append(float(np.max(np.abs(estimates - analytic[k].reshape(-1)[checked[k]]))))
    return {"analytic": analytic, "fd": fd, "errors": errors, "checked": checked}
