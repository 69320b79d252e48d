"""Train a CNN classifier: the 60-minute blitz's LeNet on CIFAR-10, or Fashion-MNIST offline.

Without options this is the blitz's "Training a classifier" with `import tapegrad as vg`: LeNet
(conv 3->6 k5, ReLU, max-pool 2, conv 6->16 k5, ReLU, max-pool 2, fc 400-120-84-10), pixels
normalised to [-1, 1], CrossEntropyLoss, SGD lr 0.001 momentum 0.9, shuffled batches of 4, two
epochs, the running loss every 2000 mini-batches, then the test accuracy and the accuracy per class.
CIFAR-10 is used when load_cifar10() finds or downloads it; offline the run falls back to
Fashion-MNIST (apt-get install dataset-fashion-mnist). On Fashion-MNIST's 1 x 28 x 28 images LeNet's
first convolution pads by 2, the 32 x 32 input of LeNet-5 on MNIST, so the fc layers stay 400-120-84-10.

    python experiments/train_cnn.py                                # the blitz: LeNet, CIFAR-10 (or Fashion-MNIST)
    python experiments/train_cnn.py -D fashion --model small -o adam -l 1e-3 -b 64 -e 5    # test accuracy 0.90
    python experiments/train_cnn.py --save lenet.npz               # then: --load lenet.npz -e 0 to test it again
    python experiments/train_cnn.py --plot curves.png              # running loss and test accuracy (matplotlib)

--model small is conv 1->32 k3 (3->32 on CIFAR-10), ReLU, max-pool 2, conv 32->64 k3, ReLU,
max-pool 2, linear to 10.
"""

import sys
import time
from argparse import ArgumentParser

import numpy as np

import tapegrad as vg
from tapegrad import nn

try:
    from tqdm import tqdm
except ImportError:  # optional: without it, no progress bar
    tqdm = None

OPTIMIZERS = {"sgd": vg.optim.SGD, "adam": vg.optim.Adam, "adamw": vg.optim.AdamW, "rmsprop": vg.optim.RMSprop}
FASHION_CLASSES = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
ARCHITECTURE = ("model", "channels", "size", "dtype")  # what --load must match


def build_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("-D", "--dataset", dest="data", choices=["auto", "cifar10", "fashion"], default="auto",
        help="cifar10, fashion, or auto: CIFAR-10 when it can be loaded, else Fashion-MNIST (auto)")
    add("--data-path", metavar="FOLDER",
        help="read the data set from FOLDER (CIFAR-10's .bin files or archive; Fashion-MNIST's IDX files); with "
             "-D auto, CIFAR-10 when FOLDER holds it, else Fashion-MNIST")
    add("--model", choices=["lenet", "small"], default="lenet", help="the blitz's LeNet, or the small CNN (lenet)")
    add("-b", "--batch-size", type=int, default=4, help="images per mini-batch (4, as the blitz)")
    add("-e", "--epochs", type=int, default=2, help="passes over the training set (2)")
    add("-o", "--optimizer", choices=sorted(OPTIMIZERS), default="sgd", help="sgd, adam, adamw or rmsprop (sgd)")
    add("-l", "--learning-rate", dest="lr", type=float, default=0.001, help="step size (0.001)")
    add("--momentum", type=float, default=None, help="momentum of sgd or rmsprop (0.9 for sgd, as the blitz)")
    add("--dtype", choices=["float32", "float64"], default="float32", help="parameters and data (float32)")
    add("--validation", action="store_true",
        help="hold out the last 5000 training images and report accuracy on them, not on the test set")
    add("--print-every", type=int, default=2000, metavar="N", help="print the running loss every N mini-batches")
    add("--seed", type=int, help="seed numpy's generator and vg.manual_seed (init, shuffling)")
    add("--threads", type=int, help="engine threads (vg.set_num_threads; default: the core count)")
    add("--save", metavar="PATH", help="write model and optimiser state to PATH (.npz) after training")
    add("--load", metavar="PATH", help="start from the model (and optimiser) state in PATH")
    add("--plot", metavar="PATH", help="write a PNG of the running loss and the accuracy per epoch (matplotlib)")
    add("--no-progress", action="store_true", help="no progress bar (tqdm's bar is shown when tqdm is installed)")
    return parser


def parse(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.momentum is None:
        args.momentum = 0.9 if args.optimizer == "sgd" else 0.0
    if args.batch_size < 1 or args.epochs < 0 or args.print_every < 1:
        parser.error("batch size and --print-every must be >= 1 and epochs >= 0")
    if args.lr < 0:
        parser.error("learning rate must be >= 0")
    if args.momentum and args.optimizer not in ("sgd", "rmsprop"):
        parser.error(f"--momentum applies to sgd and rmsprop, not {args.optimizer}")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def load_data(args):
    """(name, (xtrain, ytrain), (xtest, ytest), class names); images as float arrays in [-1, 1]."""
    final = not args.validation
    name = args.data
    if name in ("auto", "cifar10"):
        try:
            train, test, _ = vg.load_cifar10(final=final, path=args.data_path)
            return "CIFAR-10", _normalised(train), _normalised(test), vg.data.CIFAR10_CLASSES
        except (OSError, RuntimeError, ValueError) as e:
            if name == "cifar10":
                raise SystemExit(f"could not load CIFAR-10: {e}") from None
            reason = " ".join(str(e).split("\n")[:2]).strip()
            print(f"## CIFAR-10 is not available ({reason}); training on Fashion-MNIST instead")
    try:
        train, test, _ = vg.load_fashion_mnist(final=final, flatten=False, path=args.data_path)
    except (OSError, RuntimeError, ValueError) as e:
        raise SystemExit(f"could not load Fashion-MNIST: {e}") from None
    return "Fashion-MNIST", _normalised(train, 255.0), _normalised(test, 255.0), FASHION_CLASSES


def _normalised(split, top=1.0):
    """The blitz's transforms.Normalize((0.5, ...), (0.5, ...)) after ToTensor: pixels to [-1, 1]."""
    x, y = split
    return (np.asarray(x, dtype=np.float32) / np.float32(top) - np.float32(0.5)) / np.float32(0.5), y


def lenet(channels, size, dtype):
    """The blitz's LeNet; on 28 x 28 images the first convolution pads by 2 (to LeNet-5's 32 x 32)."""
    pad = (32 - size) // 2
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=pad, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120, dtype=dtype), nn.ReLU(), nn.Linear(120, 84, dtype=dtype), nn.ReLU(),
        nn.Linear(84, 10, dtype=dtype))


def small_cnn(channels, size, dtype):
    """conv channels->32 k3, ReLU, max-pool 2, conv 32->64 k3, ReLU, max-pool 2, linear to 10."""
    side = ((size - 2) // 2 - 2) // 2
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * side * side, 10, dtype=dtype))


MODELS = {"lenet": lenet, "small": small_cnn}


def predict(model, x, batch=1000):
    """Predicted classes of images x, in chunks, recording nothing."""
    model.eval()
    out = []
    with vg.no_grad():
        for start in range(0, len(x), batch):
            out.append(np.argmax(model(vg.TensorNode(x[start:start + batch], requires_grad=False)).value, axis=1))
    model.train()
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def restore(path, model, optimizer, config):
    try:
        state = vg.load(path)
    except (OSError, ValueError) as e:
        raise SystemExit(f"--load: {e}") from None
    saved = state.get("config", {})
    differ = [f"{k}: {saved.get(k)} in the checkpoint, {config[k]} here" for k in ARCHITECTURE if saved.get(k) != config[k]]
    if differ:
        raise SystemExit(f"--load {path}: the checkpoint is of another model (" + "; ".join(differ) + ")")
    model.load_state_dict(state["model"])
    if state.get("optimizer", {}).get("type") == type(optimizer).__name__:
        optimizer.load_state_dict(state["optimizer"])
        optimizer.lr = config["lr"]
    print(f"## loaded {path} (trained for {state.get('epoch', 0)} epochs)")
    return int(state.get("epoch", 0))


def report(model, x, y, classes, split):
    """The blitz's closing lines: overall accuracy and accuracy per class; returns the accuracy."""
    predicted = predict(model, x)
    accuracy = float(np.mean(predicted == y)) if len(y) else 0.0
    print(f"Accuracy of the network on the {len(y)} {split} images: {100 * accuracy:.0f} %")
    for k, name in enumerate(classes):
        mine = y == k
        if mine.any():
            print(f"Accuracy for class: {name:8s} is {100 * np.mean(predicted[mine] == k):.1f} %")
    return accuracy


def run(args):
    """Train as args say; returns a dict: "accuracies" and "times" per epoch, "running" (the
    running losses printed), "model"."""
    if args.seed is not None:
        np.random.seed(args.seed)
        vg.manual_seed(args.seed)
    if args.threads:
        vg.set_num_threads(args.threads)
    if args.plot and not vg.plot.available():
        print(f"## --plot: matplotlib is not installed, so no figure will be written ({vg.plot.INSTALL_HINT})",
              file=sys.stderr)
    name, (xtrain, ytrain), (xtest, ytest), classes = load_data(args)
    split = "validation" if args.validation else "test"
    dtype = np.dtype(args.dtype)
    xtrain, xtest = xtrain.astype(dtype, copy=False), xtest.astype(dtype, copy=False)
    channels, size = xtrain.shape[1], xtrain.shape[2]
    print(f"## {name}: {len(ytrain)} training images and {len(ytest)} {split} images of {channels} x {size} x {size}")

    model = MODELS[args.model](channels, size, dtype)
    extra = {"momentum": args.momentum} if args.optimizer in ("sgd", "rmsprop") else {}
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr, **extra)
    config = dict(model=args.model, channels=int(channels), size=int(size), dtype=args.dtype, lr=args.lr, data=name)
    done = restore(args.load, model, optimizer, config) if args.load else 0
    criterion = nn.CrossEntropyLoss()
    loader = vg.DataLoader(xtrain, ytrain, args.batch_size, shuffle=True, seed=args.seed)
    parameters = sum(p.value.size for p in model.parameters())
    print(f"## model: {args.model} ({parameters} parameters, {args.dtype}); {args.optimizer} lr {args.lr:g}"
          f"{f' momentum {args.momentum:g}' if args.momentum else ''}, batch {args.batch_size}, "
          f"{vg.get_num_threads()} thread(s)")

    accuracies, times, running_losses = [], [], []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        running = 0.0
        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}", unit="batch", leave=False,
                   disable=True if args.no_progress else None) if tqdm else None
        for i, (xb, yb) in enumerate(loader):
            optimizer.zero_grad()
            loss = criterion(model(vg.TensorNode(xb, requires_grad=False)), yb)
            loss.backward()
            optimizer.step()
            running += loss.item()
            if i % args.print_every == args.print_every - 1:
                line = f"[{epoch + 1}, {i + 1:5d}] loss: {running / args.print_every:.3f}"
                running_losses.append(running / args.print_every)
                (bar.write if bar is not None else print)(line)
                running = 0.0
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        times.append(time.perf_counter() - start)
        accuracies.append(float(np.mean(predict(model, xtest) == ytest)) if len(ytest) else 0.0)
        print(f"epoch {epoch + 1}: {times[-1]:.1f} s, {split} accuracy {accuracies[-1]:.4f}", flush=True)
    print("Finished Training" if args.epochs else "## no training")
    if times:
        print(f"## {np.mean(times):.1f} s per epoch")
    if args.save:
        vg.save({"model": model, "optimizer": optimizer, "epoch": done + args.epochs, "config": config}, args.save)
        print(f"## saved model and optimiser state to {args.save}")
    final = report(model, xtest, ytest, classes, split)
    if args.plot and args.epochs:
        try:
            fig, (left, right) = vg.plot.figure(ncols=2)
            vg.plot.curves({"running loss": running_losses}, ax=left, xlabel=f"mini-batches / {args.print_every}",
                           ylabel="loss")
            vg.plot.curves({f"{split} accuracy": accuracies}, ax=right, ylabel="accuracy")
            fig.suptitle(f"{name}: {args.model}, {args.optimizer} lr {args.lr:g}, batch {args.batch_size}")
            vg.plot.save(fig, args.plot)
            print(f"## wrote {args.plot}")
        except ImportError as e:
            print(f"## no figure: {e}", file=sys.stderr)
    return {"accuracies": accuracies, "times": times, "running": running_losses, "model": model, "accuracy": final}


def main(argv=None):
    run(parse(argv))


if __name__ == "__main__":
    main()
