"""Train vugrad's two-layer MLP (sigmoid hidden layer, log-softmax output, summed cross-entropy, SGD).

The same script as vugrad's experiments/train_mlp.py, with `import tapegrad as vg`:

    python experiments/train_mlp.py                      # synthetic data, 20 epochs
    python experiments/train_mlp.py -D mnist -l 0.0001   # MNIST (downloaded once, then cached)
    python experiments/train_mlp.py -D fashion -l 0.0001 # Fashion-MNIST (apt-get install dataset-fashion-mnist)
"""

import time
from argparse import ArgumentParser

import numpy as np

import tapegrad as vg


class MLP(vg.Module):
    """One hidden sigmoid layer of hidden_mult * input_size units, log-softmax output."""

    def __init__(self, input_size, output_size, hidden_mult=4):
        super().__init__()
        hidden_size = hidden_mult * input_size
        self.layer1 = vg.Linear(input_size, hidden_size)
        self.layer2 = vg.Linear(hidden_size, output_size)

    def forward(self, input):
        hidden = vg.sigmoid(self.layer1(input))
        return vg.logsoftmax(self.layer2(hidden))

    def parameters(self):
        return self.layer1.parameters() + self.layer2.parameters()


def load(name):
    if name == "synth":
        return vg.load_synth()
    if name == "mnist":
        return vg.load_mnist(final=False, flatten=True)
    if name == "fashion":
        return vg.load_fashion_mnist(final=False, flatten=True)
    raise SystemExit(f"Dataset {name} not recognized: use synth, mnist or fashion.")


def accuracy(model, x, y):
    with vg.no_grad():
        predictions = np.argmax(model(vg.TensorNode(x, requires_grad=False)).value, axis=1)
    return (predictions == y).mean()


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-D", "--dataset", dest="data", default="synth", help="synth, mnist or fashion")
    parser.add_argument("-b", "--batch-size", dest="batch_size", default=128, type=int,
                        help="instances per forward/backward pass")
    parser.add_argument("-e", "--epochs", dest="epochs", default=20, type=int, help="passes over the training data")
    parser.add_argument("-l", "--learning-rate", dest="lr", default=0.01, type=float,
                        help="SGD step size: 0.01 works for synth, 0.0001 for MNIST")
    parser.add_argument("--seed", type=int, default=None, help="seed numpy's generator (data and init)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.epochs < 0:
        parser.error("batch size must be >= 1 and epochs >= 0")
    if args.seed is not None:
        np.random.seed(args.seed)

    (xtrain, ytrain), (xval, yval), num_classes = load(args.data)
    print("## loaded data:")
    print(f"         number of instances: {xtrain.shape[0]} in training, {xval.shape[0]} in validation")
    print(f" training class distribution: {np.bincount(ytrain)}")
    print(f"     val. class distribution: {np.bincount(yval)}")

    n, num_features = xtrain.shape
    mlp = MLP(input_size=num_features, output_size=num_classes)

    print("\n## Starting training")
    for epoch in range(args.epochs):
        start = time.perf_counter()
        running_loss = 0.0
        for fr in range(0, n, args.batch_size):
            to = min(fr + args.batch_size, n)
            batch = vg.TensorNode(xtrain[fr:to], requires_grad=False)  # data: no gradient wanted
            loss = vg.logceloss(mlp(batch), ytrain[fr:to])
            running_loss += loss.item()
            loss.backward()
            for parm in mlp.parameters():
                parm.value -= args.lr * parm.grad
            loss.zero_grad()
            loss.clear()
        seconds = time.perf_counter() - start
        acc = accuracy(mlp, xval, yval)
        print(f"epoch {epoch:03}  running loss: {running_loss / n:.4}  validation accuracy: {acc:.4}"
              f"  ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
