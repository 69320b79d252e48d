"""Train an MLP classifier on synthetic data, MNIST or Fashion-MNIST.

Without options this is vugrad's experiments/train_mlp.py with `import tapegrad as vg`: a two-layer
MLP (sigmoid hidden layer of 4x the input size, log-softmax output), summed cross-entropy, plain
SGD with learning rate 0.01, batches of 128 in order, float64.

    python experiments/train_mlp.py                       # synthetic data, 20 epochs
    python experiments/train_mlp.py -D mnist -l 0.0001    # MNIST (downloaded once, then cached)
    python experiments/train_mlp.py -D fashion -l 0.0001  # Fashion-MNIST (apt-get install dataset-fashion-mnist)
    python experiments/train_mlp.py --preset fashion      # 784-256-10 ReLU, Adam: test accuracy >= 0.87 in 5 epochs
    python experiments/train_mlp.py --activation relu --hidden 16 16 --residual --optimizer sgd --momentum 0.9

Options given on the command line override those of a preset, which override vugrad's.
"""

import os
import sys
import time
from argparse import ArgumentParser, BooleanOptionalAction

import numpy as np

import tapegrad as vg

try:
    from tqdm import tqdm
except ImportError:  # optional: without it, one plain line per epoch
    tqdm = None

# vugrad's settings; hidden None means one layer of 4x the input size, lr None the optimiser's default
VUGRAD = dict(data="synth", batch_size=128, epochs=20, lr=None, hidden=None, activation="sigmoid",
              optimizer="sgd", momentum=0.0, init="glorot_normal", residual=False, dtype="float64",
              reduction="sum", shuffle=False, normalize="none", schedule="none", final=False,
              matmul_precision="highest")
PRESETS = {
    # the PyTorch reference run of shared/reference-figures.md, plus standardised inputs and a cosine schedule
    "fashion": dict(data="fashion", hidden=[256], activation="relu", optimizer="adam", lr=1e-3, batch_size=128,
                    reduction="mean", shuffle=True, dtype="float32", epochs=5, normalize="standardize",
                    schedule="cosine", final=True),
    "synth": dict(data="synth", hidden=[32], activation="relu", optimizer="adam", lr=1e-2, batch_size=128,
                  reduction="mean", shuffle=True, dtype="float32", epochs=5, schedule="cosine"),
}
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
OPTIMIZERS = {"sgd": vg.optim.SGD, "adam": vg.optim.Adam, "adamw": vg.optim.AdamW, "rmsprop": vg.optim.RMSprop}
ARCHITECTURE = ("sizes", "activation", "residual", "dtype", "reduction", "normalize")  # what --load must match


def build_parser(prog=None):
    """The command line's parser, without the defaults filled in (parse does that); sweep.py reads
    its options to turn a grid's settings into flags. prog: the name its messages start with."""
    parser = ArgumentParser(prog=prog, description=__doc__.splitlines()[0],
                            epilog="Options given explicitly override those of a preset, which override vugrad's.")
    add = parser.add_argument
    add("-D", "--dataset", dest="data", help="synth, mnist or fashion (default synth)")
    add("-b", "--batch-size", dest="batch_size", type=int, help="instances per forward/backward pass (128)")
    add("-e", "--epochs", dest="epochs", type=int, help="passes over the training data (20)")
    add("-l", "--learning-rate", dest="lr", type=float,
        help="step size: 0.01 works for synth, 0.0001 for MNIST with vugrad's model (default 0.01 for sgd, "
             "0.001 for the others)")
    add("--preset", choices=sorted(PRESETS),
        help="fashion: 784-256-10 ReLU, Adam 1e-3 with a cosine schedule, batch 128, mean cross-entropy, shuffled, "
             "standardised float32 inputs, 5 epochs, test accuracy; synth: 2-32-2 ReLU, Adam 1e-2, the same otherwise")
    add("--hidden", type=int, nargs="+", metavar="N", help="hidden layer sizes, e.g. --hidden 256 128 (4x input)")
    add("--activation", choices=["sigmoid", "relu", "tanh", "softplus", "leaky_relu"],
        help="hidden activation (sigmoid)")
    add("--residual", action=BooleanOptionalAction, help="add a hidden layer's input to its output where sizes agree")
    add("--init", choices=sorted(vg.init.INITIALISERS),
        help="weight initialiser (glorot_normal; 'normal' is the standard normal, 'zeros' all zeros)")
    add("--optimizer", choices=sorted(OPTIMIZERS), help="sgd, adam, adamw or rmsprop (sgd)")
    add("--momentum", type=float, help="momentum of sgd or rmsprop (0)")
    add("--schedule", choices=["none", "cosine"], help="learning rate per epoch: constant, or cosine annealing to 0")
    add("--reduction", choices=["sum", "mean"], help="cross-entropy summed over a batch (vugrad) or averaged (sum)")
    add("--shuffle", action=BooleanOptionalAction, help="a new random order of the training data every epoch")
    add("--normalize", choices=["none", "scale", "standardize"],
        help="inputs as they are, divided by their largest magnitude, or shifted and scaled by the training set's "
             "mean and standard deviation (none)")
    add("--dtype", choices=["float32", "float64"], help="dtype of parameters and data (float64)")
    add("--matmul-precision", dest="matmul_precision", choices=["highest", "high", "medium"],
        help="float32 matrix products in float32 (highest, high) or with bfloat16 operands summed in float32 "
             "(medium): vg.set_float32_matmul_precision (highest)")
    add("--final", action=BooleanOptionalAction,
        help="MNIST/Fashion-MNIST: train on all 60000 training images and report accuracy on the test set")
    add("--seed", type=int, help="seed numpy's generator and vg.manual_seed (data, init, shuffling)")
    add("--save", metavar="PATH", help="write model and optimiser state to PATH (.npz) after training")
    add("--load", metavar="PATH", help="start from the model (and optimiser) state in PATH")
    add("--plot", metavar="PATH", help="write a PNG of loss and accuracy per epoch (needs matplotlib)")
    add("--draw", metavar="PATH", help="draw the computation graph of the first training step to PATH (.svg, .png, "
                                       ".pdf need Graphviz; .dot is its text)")
    return parser


def parse(argv, prog=None):
    """The run's settings from a command line (a list of strings; None: sys.argv), with the preset's
    values and then vugrad's filled in where a flag was not given; exits with a message on bad flags."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    preset = PRESETS.get(args.preset, {})
    for name, default in VUGRAD.items():
        if getattr(args, name) is None:
            setattr(args, name, preset.get(name, default))
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    if args.batch_size < 1 or args.epochs < 0:
        parser.error("batch size must be >= 1 and epochs >= 0")
    if args.lr < 0:
        parser.error("learning rate must be >= 0")
    if args.momentum and args.optimizer not in ("sgd", "rmsprop"):
        parser.error(f"--momentum applies to sgd and rmsprop, not {args.optimizer}")
    if args.hidden is not None and any(h < 1 for h in args.hidden):
        parser.error("hidden layer sizes must be >= 1")
    if args.draw and os.path.splitext(args.draw)[1].lower() not in vg.draw.FORMATS:
        parser.error(f"--draw {args.draw}: the name must end in one of {', '.join(vg.draw.FORMATS)}")
    return args


def load(name, final):
    try:
        if name == "synth":
            return vg.load_synth()
        if name == "mnist":
            return vg.load_mnist(final=final, flatten=True)
        if name == "fashion":
            return vg.load_fashion_mnist(final=final, flatten=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise SystemExit(f"could not load {name}: {e}") from None
    raise SystemExit(f"Dataset {name} not recognized: use synth, mnist or fashion.")


def normalizer(kind, xtrain):
    """(shift, scale) such that (x - shift) / scale is the model's input."""
    if kind == "scale":
        return 0.0, float(np.abs(xtrain).max()) or 1.0
    if kind == "standardize":
        return float(xtrain.mean()), float(xtrain.std()) or 1.0
    return 0.0, 1.0


def evaluate(model, x, y):
    """Accuracy of the model's predictions on (x, y), in chunks, recording nothing."""
    model.eval()
    correct = 0
    with vg.no_grad():
        for xb, yb in vg.batches(x, y, 2048):
            correct += int((np.argmax(model(vg.TensorNode(xb, requires_grad=False)).value, axis=1) == yb).sum())
    model.train()
    return correct / len(y)


def restore(path, model, optimizer, config):
    """Load a --save checkpoint into model (and optimizer when it is of the same kind); returns its epoch."""
    try:
        state = vg.load(path)
    except (OSError, ValueError) as e:
        raise SystemExit(f"--load: {e}") from None
    saved = state.get("config", {})
    differ = [f"{k}: {saved.get(k)} in the checkpoint, {config[k]} here"
              for k in ARCHITECTURE if saved.get(k) != config[k]]
    if differ:
        raise SystemExit(f"--load {path}: the checkpoint is of another model (" + "; ".join(differ) + ")")
    model.load_state_dict(state["model"])
    if state.get("optimizer", {}).get("type") == type(optimizer).__name__:
        optimizer.load_state_dict(state["optimizer"])
        optimizer.lr = config["lr"]
    else:
        print(f"## --load: optimiser state not restored (the checkpoint has {state.get('optimizer', {}).get('type')})")
    print(f"## loaded {path} (trained for {state.get('epoch', 0)} epochs)")
    return int(state.get("epoch", 0))


def draw_step(loss, model, path):
    """Draw the graph below loss to path, the parameters named as the model names them."""
    try:
        drawing = vg.draw(loss, path, names=model, title="train_mlp.py: the graph of one training step")
    except (ImportError, RuntimeError, ValueError) as e:
        print(f"## --draw: no picture: {e}", file=sys.stderr)
    else:
        print(f"## drew the first step's graph ({drawing.tensors} tensors, {drawing.ops} ops) to {path}")


def run(args, activation=None):
    """Train as args say; returns a dict: "losses", "accuracies", "times" per epoch, "split" (the
    name of the evaluation split), "model", and "prepare" (raw inputs -> the model's inputs).

    activation: a Module to use in the hidden layers instead of args.activation (e.g. a ReLU of one's own).
    """
    before = vg.get_float32_matmul_precision()
    vg.set_float32_matmul_precision(args.matmul_precision)
    try:
        return train(args, activation)
    finally:
        vg.set_float32_matmul_precision(before)


def train(args, activation):
    """run()'s work, with the matmul precision set."""
    if args.seed is not None:
        np.random.seed(args.seed)
        vg.manual_seed(args.seed)
    if args.plot and not vg.plot.available():
        print(f"## --plot: matplotlib is not installed, so no figure will be written ({vg.plot.INSTALL_HINT})",
              file=sys.stderr)

    (xtrain, ytrain), (xval, yval), num_classes = load(args.data, args.final)
    split = "test" if args.final and args.data != "synth" else "validation"
    print("## loaded data:")
    print(f"         number of instances: {xtrain.shape[0]} in training, {xval.shape[0]} in {split}")
    print(f" training class distribution: {np.bincount(ytrain)}")
    print(f"{('test' if split == 'test' else 'val.') + ' class distribution:':>29} {np.bincount(yval)}")

    dtype = np.dtype(args.dtype)
    shift, scale = normalizer(args.normalize, xtrain)
    xtrain, xval = xtrain.astype(dtype), xval.astype(dtype)  # copies: the loaders' arrays stay as they are
    if args.normalize != "none":
        for x in (xtrain, xval):
            x -= shift
            x /= scale

    n, num_features = xtrain.shape
    hidden = args.hidden if args.hidden is not None else [4 * num_features]
    sizes = [num_features, *hidden, num_classes]
    # summed loss: vugrad's log-softmax output and logceloss; mean loss: logits and fused cross-entropy
    model = vg.MLP(sizes, activation=activation or args.activation, residual=args.residual, init=args.init,
                   dtype=dtype, output_activation="log_softmax" if args.reduction == "sum" else None)
    extra = {"momentum": args.momentum} if args.optimizer in ("sgd", "rmsprop") else {}
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr, **extra)
    schedule = vg.optim.CosineAnnealingLR(optimizer, max(args.epochs, 1)) if args.schedule == "cosine" else None
    config = dict(sizes=sizes, activation=args.activation, residual=args.residual, dtype=args.dtype,
                  reduction=args.reduction, lr=args.lr, data=args.data, normalize=args.normalize,
                  shift=shift, scale=scale)
    done = restore(args.load, model, optimizer, config) if args.load else 0
    loader = vg.DataLoader(xtrain, ytrain, args.batch_size, shuffle=args.shuffle, seed=args.seed)

    print(f"\n## model: {'-'.join(map(str, sizes))} {args.activation}{' residual' if args.residual else ''}, "
          f"{args.init} init, {args.dtype}{' (bfloat16 products)' if args.matmul_precision == 'medium' else ''}; "
          f"{args.optimizer} lr {args.lr:g}"
          f"{f' momentum {args.momentum:g}' if args.momentum else ''}{', cosine schedule' if schedule else ''}, "
          f"batch {args.batch_size}{' shuffled' if args.shuffle else ''}, {args.reduction} cross-entropy")
    print("\n## Starting training")
    losses, accuracies, times = [], [], []
    draw_pending = bool(args.draw)
    for epoch in range(args.epochs):
        start = time.perf_counter()
        total = 0.0
        bar = tqdm(total=len(loader), desc=f"epoch {epoch:03}", unit="batch", leave=False,
                   disable=None) if tqdm else None
        for xb, yb in loader:
            output = model(vg.TensorNode(xb, requires_grad=False))  # data: no gradient wanted
            if args.reduction == "sum":
                loss = vg.logceloss(output, yb)
                total += loss.item()
            else:
                loss = vg.cross_entropy(output, yb)
                total += loss.item() * len(yb)
            if draw_pending:  # once, and not counted in the epoch's time
                draw_pending, began = False, time.perf_counter()
                draw_step(loss, model, args.draw)
                start += time.perf_counter() - began
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        if schedule is not None:
            schedule.step()
        seconds = time.perf_counter() - start
        acc = evaluate(model, xval, yval)
        losses.append(total / n)
        accuracies.append(acc)
        times.append(seconds)
        print(f"epoch {epoch:03}  train loss: {total / n:.4}  {split} accuracy: {acc:.4}  ({seconds:.2f} s)",
              flush=True)

    if args.epochs:
        best = int(np.argmax(accuracies))
        print(f"\n## done: {args.epochs} epoch{'s' if args.epochs > 1 else ''} in {sum(times):.1f} s "
              f"({np.mean(times):.2f} s per epoch); "
              f"{split} accuracy {accuracies[-1]:.4f} (best {accuracies[best]:.4f} after epoch {best + 1})")
    else:
        print(f"\n## no training: {split} accuracy {evaluate(model, xval, yval):.4f}")
    if args.save:
        vg.save({"model": model, "optimizer": optimizer, "epoch": done + args.epochs, "config": config}, args.save)
        print(f"## saved model and optimiser state to {args.save}")
    if args.plot and args.epochs:
        try:
            vg.plot.training_curves({"train loss": losses}, {f"{split} accuracy": accuracies}, path=args.plot,
                                    title=f"{args.data}: {'-'.join(map(str, sizes))} {args.activation}, "
                                          f"{args.optimizer} lr {args.lr:g}")
            print(f"## wrote {args.plot}")
        except ImportError as e:
            print(f"## no figure: {e}", file=sys.stderr)
    def prepare(x):
        x = np.asarray(x).astype(dtype)
        return (x - dtype.type(shift)) / dtype.type(scale) if args.normalize != "none" else x

    return {"losses": losses, "accuracies": accuracies, "times": times, "split": split, "model": model,
            "prepare": prepare}


def main(argv=None):
    run(parse(argv))


if __name__ == "__main__":
    main()
