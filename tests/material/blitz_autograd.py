"""The blitz's autograd tutorial ported: Q.backward(gradient=...), which results require grad, and
freezing a model's parameters to train only a new last layer."""


def vector_backward(lib):
    """Q = 3 a^3 - b^2 with an external gradient of ones; returns the grads and the checks."""
    torch = lib.torch
    a = torch.tensor([2., 3.], requires_grad=True)
    b = torch.tensor([6., 4.], requires_grad=True)
    Q = 3 * a ** 3 - b ** 2
    external_grad = torch.tensor([1., 1.])
    Q.backward(gradient=external_grad)
    return {"a_grad": a.grad.tolist(), "b_grad": b.grad.tolist(),
            "a_check": (9 * a ** 2 == a.grad).tolist(), "b_check": (-2 * b == b.grad).tolist()}


def requires_grad_flow(lib):
    """Whether a result requires grad: only when one of its inputs does."""
    torch = lib.torch
    x = torch.rand(5, 5)
    y = torch.rand(5, 5)
    z = torch.rand((5, 5), requires_grad=True)
    a = x + y
    b = x + z
    return {"a": a.requires_grad, "b": b.requires_grad}


def frozen_model(lib):
    """Freezes a small model, replaces its classifier and takes one SGD step.

    The tutorial does this with torchvision's resnet18; a two-layer model with a ``fc`` attribute
    shows the same thing. Returns which parameters got gradients and which changed.
    """
    torch, nn, optim = lib.torch, lib.nn, lib.optim

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(self.features(x))

    model = Model()
    for param in model.parameters():
        param.requires_grad = False
    model.fc = nn.Linear(16, 10)      # a new layer's parameters require grad
    optimizer = optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    out = model(torch.randn(3, 8))
    loss = out.sum()
    loss.backward()
    optimizer.step()
    return {"names": [name for name, _ in model.named_parameters()],
            "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
            "has_grad": {name: p.grad is not None for name, p in model.named_parameters()},
            "changed": {name: not bool((p == before[name]).all())
                        for name, p in model.named_parameters()},
            "out_shape": tuple(out.shape)}
