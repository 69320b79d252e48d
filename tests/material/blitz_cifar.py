"""The blitz's CIFAR-10 classifier ported, on small random data of CIFAR's shape: the tutorial's
Net, TensorDataset + DataLoader(batch_size=4, shuffle=True), CrossEntropyLoss, SGD with lr 0.001
and momentum 0.9, two epochs with the running loss printed, save/load of the state_dict, test
accuracy and accuracy per class."""

import numpy as np

CLASSES = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


def random_cifar(train=40, test=20, seed=0):
    """Images (n, 3, 32, 32) float32 in [-1, 1] (what the tutorial's Normalize gives) and int64
    labels 0..9, every class as often as the others."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (train + test, 3, 32, 32)).astype(np.float32)
    labels = np.concatenate([rng.permutation(np.arange(train) % 10),
                             rng.permutation(np.arange(test) % 10)]).astype(np.int64)
    return images[:train], labels[:train], images[train:], labels[train:]


def make_net(lib):
    """The tutorial's Net for 3x32x32 images."""
    torch, nn, F = lib.torch, lib.nn, lib.F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)  # all dimensions but the batch
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x

    return Net


def numpy_state(net):
    """A module's state_dict as numpy copies."""
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def cifar_tutorial(lib, data, path, state=None, shuffle=True, epochs=2, print_every=5):
    """Trains, saves, loads and tests the tutorial's Net.

    data: the four arrays of random_cifar(); path: where torch.save writes (a str, like the
    tutorial's './cifar_net.pth'); state: numpy weights to start from; print_every: mini-batches
    between running-loss lines (the tutorial's 2000 is for 12,500 mini-batches). Returns a dict.
    """
    torch, nn, optim = lib.torch, lib.nn, lib.optim
    TensorDataset, DataLoader = lib.TensorDataset, lib.DataLoader
    Net = make_net(lib)
    train_x, train_y, test_x, test_y = data
    seen = {"printed": []}

    trainset = TensorDataset(torch.tensor(train_x), torch.tensor(train_y))
    trainloader = DataLoader(trainset, batch_size=4, shuffle=shuffle)
    testset = TensorDataset(torch.tensor(test_x), torch.tensor(test_y))
    testloader = DataLoader(testset, batch_size=4, shuffle=False)
    classes = CLASSES

    net = Net()
    if state is not None:
        net.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    seen["initial_state"] = numpy_state(net)

    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

    seen["batch_losses"] = []
    for epoch in range(epochs):  # loop over the dataset several times
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            inputs, labels = data
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()

            running_loss += loss.item()
            seen["batch_losses"].append(loss.item())
            if i % print_every == print_every - 1:
                line = f'[{epoch + 1}, {i + 1:5d}] loss: {running_loss / print_every:.3f}'
                print(line)
                seen["printed"].append(line)
                running_loss = 0.0
    print('Finished Training')
    seen["trained_state"] = numpy_state(net)

    PATH = path
    torch.save(net.state_dict(), PATH)

    dataiter = iter(testloader)
    images, labels = next(dataiter)
    seen["ground_truth"] = ' '.join(f'{classes[labels[j]]:5s}' for j in range(4))

    net = Net()
    net.load_state_dict(torch.load(PATH, weights_only=True))
    seen["loaded_state"] = numpy_state(net)
    outputs = net(images)
    _, predicted = torch.max(outputs, 1)
    seen["predicted"] = ' '.join(f'{classes[predicted[j]]:5s}' for j in range(4))

    correct = 0
    total = 0
    all_outputs = []
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            outputs = net(images)
            all_outputs.append(outputs.numpy().copy())
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    seen["test_outputs"] = np.concatenate(all_outputs)
    seen["total"] = total
    seen["accuracy"] = 100 * correct // total

    correct_pred = {classname: 0 for classname in classes}
    total_pred = {classname: 0 for classname in classes}
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            outputs = net(images)
            _, predictions = torch.max(outputs, 1)
            for label, prediction in zip(labels, predictions):
                if label == prediction:
                    correct_pred[classes[label]] += 1
                total_pred[classes[label]] += 1
    seen["class_accuracy"] = {}
    for classname, correct_count in correct_pred.items():
        accuracy = 100 * float(correct_count) / total_pred[classname]
        seen["class_accuracy"][classname] = accuracy
    seen["total_pred"] = total_pred
    seen["correct"] = correct
    return seen
