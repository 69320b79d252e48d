"""Epochs of a CNN in tapegrad and in PyTorch, interleaved in one process: time per epoch and test
accuracy after each epoch, from the same initial parameters and the same batches.

    python benchmarks/cnn_epoch.py                       # small CNN, Fashion-MNIST, Adam 1e-3, batch 128, 5 epochs
    python benchmarks/cnn_epoch.py --threads 1 --epochs 2
    python benchmarks/cnn_epoch.py --model lenet --dataset cifar10 --optimizer sgd --lr 0.001 --batch-size 4

The model and the data come from experiments/train_cnn.py (pixels in [-1, 1]); PyTorch runs the
same layers (torch.nn), starting from tapegrad's initial parameters, on the same shuffled batches.
Epochs alternate between the libraries (tapegrad's first epoch, PyTorch's first, ...), so a burst
of load from other jobs hits both. Writes benchmarks/results/cnn_epoch.json.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "experiments"))

import tapegrad as vg  # noqa: E402
import train_cnn  # noqa: E402


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def torch_model(torch, model):
    """torch.nn layers mirroring a tapegrad Sequential of Conv2d/ReLU/MaxPool2d/Flatten/Linear, with
    its parameters copied in."""
    tn = torch.nn
    layers = []
    for layer in model:
        if isinstance(layer, vg.nn.Conv2d):
            t = tn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding)
            t.weight.data = torch.tensor(layer.weight.value.copy())
            t.bias.data = torch.tensor(layer.bias.value.copy())
        elif isinstance(layer, vg.nn.Linear):
            t = tn.Linear(layer.in_features, layer.out_features)
            t.weight.data = torch.tensor(layer.weight.value.copy())
            t.bias.data = torch.tensor(layer.bias.value.copy())
        elif isinstance(layer, vg.nn.MaxPool2d):
            t = tn.MaxPool2d(layer.kernel_size)
        else:
            t = {vg.nn.ReLU: tn.ReLU, vg.nn.Flatten: tn.Flatten}[type(layer)]()
        layers.append(t)
    return tn.Sequential(*layers)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(train_cnn.MODELS), default="small")
    p.add_argument("--dataset", choices=["fashion", "cifar10"], default="fashion")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="threads of both libraries (default: the core count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-path", help="the data set's folder (as train_cnn.py's --data-path)")
    p.add_argument("--limit", type=int, help="train on the first LIMIT images only (a smoke test)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "cnn_epoch.json"))
    args = p.parse_args(argv)
    import torch

    threads = args.threads or os.cpu_count()
    vg.set_num_threads(threads)
    torch.set_num_threads(threads)
    data = train_cnn.parse(["-D", args.dataset] + (["--data-path", args.data_path] if args.data_path else []))
    name, (xtrain, ytrain), (xtest, ytest), _ = train_cnn.load_data(data)
    if args.limit:
        xtrain, ytrain = xtrain[:args.limit], ytrain[:args.limit]
    vg.manual_seed(args.seed)
    model = train_cnn.MODELS[args.model](xtrain.shape[1], xtrain.shape[2], np.float32)
    tmodel = torch_model(torch, model)
    momentum = {"momentum": 0.9} if args.optimizer == "sgd" else {}
    opt = (vg.optim.Adam if args.optimizer == "adam" else vg.optim.SGD)(model.parameters(), lr=args.lr, **momentum)
    topt = (torch.optim.Adam if args.optimizer == "adam" else torch.optim.SGD)(tmodel.parameters(), lr=args.lr,
                                                                               **momentum)
    criterion = vg.nn.CrossEntropyLoss()
    xt_test = torch.tensor(xtest)
    rng = np.random.default_rng(args.seed)

    def tapegrad_epoch(order):
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            opt.zero_grad()
            loss = criterion(model(vg.TensorNode(xtrain[idx], requires_grad=False)), ytrain[idx])
            loss.backward()
            opt.step()
        return float(np.mean(train_cnn.predict(model, xtest) == ytest))

    def torch_epoch(order):
        xt, yt = torch.from_numpy(xtrain), torch.from_numpy(ytrain)
        for start in range(0, len(order), args.batch_size):
            idx = torch.from_numpy(order[start:start + args.batch_size])
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(tmodel(xt[idx]), yt[idx])
            loss.backward()
            topt.step()
        with torch.no_grad():
            predicted = torch.cat([tmodel(xt_test[i:i + 1000]).argmax(1) for i in range(0, len(xt_test), 1000)])
        return float((predicted.numpy() == ytest).mean())

    results = {"tapegrad": {"seconds": [], "accuracy": []}, "torch": {"seconds": [], "accuracy": []}}
    for epoch in range(args.epochs):
        order = rng.permutation(len(ytrain))
        for lib, run in (("tapegrad", tapegrad_epoch), ("torch", torch_epoch)):
            start = time.perf_counter()
            accuracy = run(order)
            results[lib]["seconds"].append(time.perf_counter() - start)  # the test pass included, as a user sees it
            results[lib]["accuracy"].append(accuracy)
            print(f"epoch {epoch + 1} {lib:8s}: {results[lib]['seconds'][-1]:6.1f} s, test accuracy {accuracy:.4f}",
                  flush=True)
    summary = {lib: {"median_seconds_per_epoch": float(np.median(r["seconds"])), "final_accuracy": r["accuracy"][-1]}
               for lib, r in results.items()}
    ratio = summary["tapegrad"]["median_seconds_per_epoch"] / summary["torch"]["median_seconds_per_epoch"]
    print(f"## {name}, {args.model}, {args.optimizer} lr {args.lr:g}, batch {args.batch_size}, {threads} thread(s): "
          f"tapegrad {summary['tapegrad']['median_seconds_per_epoch']:.1f} s per epoch, PyTorch "
          f"{summary['torch']['median_seconds_per_epoch']:.1f} s ({ratio:.2f}x); test accuracy after {args.epochs} "
          f"epochs {summary['tapegrad']['final_accuracy']:.4f} and {summary['torch']['final_accuracy']:.4f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"settings": vars(args) | {"threads": threads, "data": name}, "results": results, "summary": summary,
                   "ratio": ratio, "cpu": cpu_name(), "torch": torch.__version__,
                   "load_average": list(os.getloadavg())}, f, indent=1)


if __name__ == "__main__":
    main()
