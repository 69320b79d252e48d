"""Homework: how precisely does a test set measure a classifier's error? 0/1 loss, Hoeffding, bootstrap.

    python experiments/test_error_study.py                        # synth: vugrad's MLP after one epoch
    python experiments/test_error_study.py --eps 0.02 --confidence 0.95
    python experiments/test_error_study.py -D fashion --preset fashion -e 2   # the Fashion-MNIST test set

Hoeffding's inequality for the mean of m independent 0/1 losses, P(|test error - true error| > eps)
<= 2 exp(-2 m eps^2), gives the test-set size m = ceil(ln(2 / delta) / (2 eps^2)) for a precision eps
at confidence 1 - delta (eps = 0.01 at 99%: m = 26,492), and for a given m the interval
test error -/+ sqrt(ln(2 / delta) / (2 m)). The script trains a model with train_mlp.py (options
not listed here go to it), measures its 0/1 test error on a test set of that size (synth draws a
fresh one; MNIST and Fashion-MNIST use their 10,000 test images), and compares the Hoeffding
interval with the bootstrap's spread. On synth, where fresh data is free, it also estimates the true
error on a million new points and counts how often independent small test sets miss it by more than
Hoeffding's eps. The figure: the histogram of the bootstrap's test errors with the intervals.
"""

import os
import sys
from argparse import ArgumentParser

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_mlp  # noqa: E402  (the training script next to this one)

import tapegrad as vg  # noqa: E402
from tapegrad import metrics  # noqa: E402

FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")


def predictor(result):
    """Labels predicted by the trained model of train_mlp.run, in chunks, recording nothing."""
    model, prepare = result["model"], result["prepare"]

    def predict(x):
        model.eval()
        with vg.no_grad():
            return np.concatenate([np.argmax(model(vg.TensorNode(prepare(xb), requires_grad=False)).value, axis=1)
                                   for xb in vg.batches(x, None, 8192)])
    return predict


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0],
                            epilog="Other options go to train_mlp.py (default here: -e 1 --seed 0).")
    parser.add_argument("--eps", type=float, default=0.01, help="wanted precision of the test error (0.01)")
    parser.add_argument("--confidence", type=float, default=0.99, help="wanted confidence 1 - delta (0.99)")
    parser.add_argument("--test-size", type=int, help="synth: instances in the test set (the Hoeffding size)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (1000)")
    parser.add_argument("--repeats", type=int, default=200,
                        help="synth: independent small test sets drawn to check the bound (200)")
    parser.add_argument("--out", default=os.path.join(FIGURES, "test_error_study.png"),
                        help="the figure (PNG; default experiments/figures/test_error_study.png)")
    parser.add_argument("--no-plot", action="store_true", help="print the numbers only")
    args, rest = parser.parse_known_args(argv)
    try:
        m_needed = metrics.hoeffding_sample_size(args.eps, args.confidence)
    except ValueError as e:
        parser.error(str(e))
    if args.resamples < 1 or args.repeats < 0 or (args.test_size is not None and args.test_size < 1):
        parser.error("--resamples and --test-size must be >= 1, --repeats >= 0")

    print("## Hoeffding: test-set size m = ceil(ln(2 / delta) / (2 eps^2))")
    for eps in sorted({args.eps, 0.05, 0.02, 0.01}, reverse=True):
        sizes = ", ".join(f"{c:.0%}: {metrics.hoeffding_sample_size(eps, c):,}" for c in (0.9, 0.95, 0.99))
        print(f"  eps {eps:g}: {sizes}")
    print(f"  wanted: eps {args.eps:g} at {args.confidence:.0%} confidence -> m = {m_needed:,}")

    print("\n## training the model")
    run_args = train_mlp.parse(["-e", "1", "--seed", "0"] + rest)
    result = train_mlp.run(run_args)
    predict = predictor(result)

    synth = run_args.data == "synth"
    rng = np.random.default_rng(12345)
    if synth:  # fresh points from the same distribution, never seen in training
        m = args.test_size or m_needed
        _, (xtest, ytest), _ = vg.load_synth(num_train=0, num_val=m, seed=rng)
    else:
        loader = vg.load_mnist if run_args.data == "mnist" else vg.load_fashion_mnist
        _, (xtest, ytest), _ = loader(final=True)
        m = len(ytest)
    predictions = predict(xtest)
    error = metrics.zero_one_error(predictions, ytest)
    eps_m = metrics.hoeffding_epsilon(m, args.confidence)
    low, high = metrics.hoeffding_interval(error, m, args.confidence)
    print(f"\n## 0/1 test error on m = {m:,} test instances: {error:.4f}")
    print(f"Hoeffding {args.confidence:.0%} interval: [{low:.4f}, {high:.4f}] (eps = {eps_m:.4f})")
    print("confusion matrix (rows: true class, columns: predicted):")
    print(metrics.confusion_matrix(ytest, predictions, num_classes=int(max(ytest.max(), predictions.max())) + 1))

    boot = metrics.bootstrap((ytest, predictions), n_resamples=args.resamples, seed=rng, confidence=args.confidence)
    print(f"\n## bootstrap, {args.resamples} resamples of the test set: mean {boot.mean:.4f}, standard error "
          f"{boot.std:.4f}, {args.confidence:.0%} percentile interval [{boot.interval[0]:.4f}, {boot.interval[1]:.4f}]")
    print(f"the Hoeffding interval is {(high - low) / max(boot.interval[1] - boot.interval[0], 1e-12):.1f}x as wide: "
          "it holds for any distribution of the losses, the bootstrap describes this one")

    lines = {"test error": error, f"Hoeffding {args.confidence:.0%}": (low, high),
             f"bootstrap {args.confidence:.0%}": boot.interval}
    if synth:
        _, (xbig, ybig), _ = vg.load_synth(num_train=0, num_val=1_000_000, seed=rng)
        true_error = metrics.zero_one_error(predict(xbig), ybig)
        inside = low <= true_error <= high
        print(f"\n## true error, estimated on 1,000,000 fresh points: {true_error:.4f} "
              f"({'inside' if inside else 'OUTSIDE'} the Hoeffding interval)")
        if args.repeats:
            small = 1000
            eps_small = metrics.hoeffding_epsilon(small, args.confidence)
            _, (xr, yr), _ = vg.load_synth(num_train=0, num_val=small * args.repeats, seed=rng)
            wrong = (predict(xr) != yr).reshape(args.repeats, small).mean(axis=1)
            misses = np.mean(np.abs(wrong - true_error) > eps_small)
            print(f"{args.repeats} independent test sets of {small}: errors {wrong.min():.4f} to {wrong.max():.4f} "
                  f"(std {wrong.std():.4f}); {misses:.1%} miss the true error by more than eps = {eps_small:.4f} "
                  f"(Hoeffding allows {1 - args.confidence:.0%})")
        lines["true error"] = true_error

    if args.no_plot:
        return
    try:
        vg.plot.histogram(boot.estimates, path=args.out, bins=40, lines=lines, xlabel="0/1 test error",
                          title=f"bootstrap of the test error (m = {m:,})")
        print(f"wrote {args.out}")
    except ImportError as e:
        print(f"no figure: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
