"""The blitz's neural-network tutorial ported: LeNet (conv 1->6 k5, max-pool 2, conv 6->16 k5,
max-pool 2, fc 400-120-84-10 on a 1x32x32 input), a backward from random gradients, MSELoss and its
grad_fn, the manual update ``f.data.sub_(f.grad.data * learning_rate)``, then optim.SGD."""


def make_lenet(lib):
    """The tutorial's Net class."""
    torch, nn, F = lib.torch, lib.nn, lib.F

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            # 1 input channel, 6 output channels, 5x5 kernels
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            # 16 channels of 5x5 after two convolutions and two poolings of a 32x32 image
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x

    return Net


def numpy_state(net):
    """A module's state_dict as numpy copies."""
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def lenet_tutorial(lib, state=None, inputs=None, sgd_steps=3):
    """Runs the tutorial's cells on LeNet.

    state: numpy weights to start from (a numpy_state); inputs: numpy arrays "image" (1, 1, 32, 32),
    "out_grad" (1, 10) and "target" (10,) in place of the tutorial's torch.randn draws. Returns a
    dict of what the cells print and numpy copies of outputs, gradients and weights.
    """
    torch, nn, optim = lib.torch, lib.nn, lib.optim
    Net = make_lenet(lib)
    seen = {}

    net = Net()
    if state is not None:
        net.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    seen["initial_state"] = numpy_state(net)
    print(net)
    seen["printed"] = str(net)

    params = list(net.parameters())
    seen["n_params"] = len(params)
    seen["conv1_weight_size"] = tuple(params[0].size())

    if inputs is None:
        input = torch.randn(1, 1, 32, 32)
        out_grad = torch.randn(1, 10)
        target = torch.randn(10)
    else:
        input = torch.tensor(inputs["image"])
        out_grad = torch.tensor(inputs["out_grad"])
        target = torch.tensor(inputs["target"])
    out = net(input)
    seen["out"] = out.detach().numpy().copy()

    net.zero_grad()
    out.backward(out_grad)
    seen["grads"] = {name: p.grad.numpy().copy() for name, p in net.named_parameters()}

    output = net(input)
    target = target.view(1, -1)      # the same shape as the output
    criterion = nn.MSELoss()
    loss = criterion(output, target)
    seen["loss"] = loss.item()
    seen["loss_has_grad_fn"] = loss.grad_fn is not None
    seen["grad_fn_has_next"] = loss.grad_fn.next_functions[0][0] is not None

    net.zero_grad()
    seen["bias_grad_before"] = net.conv1.bias.grad
    loss.backward()
    seen["bias_grad_after"] = net.conv1.bias.grad.numpy().copy()

    learning_rate = 0.01
    for f in net.parameters():
        f.data.sub_(f.grad.data * learning_rate)
    seen["state_after_manual_update"] = numpy_state(net)

    optimizer = optim.SGD(net.parameters(), lr=0.01)
    seen["sgd_losses"] = []
    for _ in range(sgd_steps):
        optimizer.zero_grad()
        output = net(input)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        seen["sgd_losses"].append(loss.item())
    seen["final_state"] = numpy_state(net)
    return seen
