"""vugrad's MNIST-shaped step (784-3136-10, sigmoid, log-softmax, summed cross-entropy, SGD at 1e-4)
with the batch held in a variable or wrapped inline: backward skips the gradient of a leaf that only
the graph holds (nobody could read it), which is the largest product of the step's backward.

    python benchmarks/leaf_gradients.py [float32|float64]

Prints the median time per step (process CPU time over 30 steps, 1 thread) and the peak resident
memory for each way. Run it with another tapegrad on PYTHONPATH to compare builds.
"""

import resource
import sys
import time

import numpy as np

import tapegrad as vg


def steps(dtype, inline, count=30, batch=128):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch * count, 784)).astype(dtype)
    y = rng.integers(0, 10, batch * count)
    w1 = vg.TensorNode((rng.standard_normal((3136, 784)) * 0.03).astype(dtype))
    b1 = vg.TensorNode(np.zeros((1, 3136), dtype))
    w2 = vg.TensorNode((rng.standard_normal((10, 3136)) * 0.03).astype(dtype))
    b2 = vg.TensorNode(np.zeros((1, 10), dtype))
    params = [w1, b1, w2, b2]

    def model(batch_node):
        hidden = vg.sigmoid(vg.BatchMM.do_forward(w1, batch_node) + b1)
        return vg.logsoftmax(vg.BatchMM.do_forward(w2, hidden) + b2)

    times = []
    for i in range(count):
        rows = slice(batch * i, batch * (i + 1))
        start = time.process_time()
        if inline:
            out = model(vg.TensorNode(x[rows]))
        else:
            held = vg.TensorNode(x[rows])
            out = model(held)
        vg.logceloss(out, y[rows]).backward()
        for p in params:
            p.value -= 1e-4 * p.grad
            p.grad[...] = 0
        times.append(time.process_time() - start)
    return float(np.median(times))


def main(argv):
    dtype = {"float32": np.float32, "float64": np.float64}[argv[0] if argv else "float64"]
    vg.set_num_threads(1)
    for inline in (False, True):
        ms = steps(dtype, inline) * 1000
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{np.dtype(dtype).name} batch {'inline' if inline else 'held  '}: {ms:7.2f} ms/step, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
