"""tapegrad: a tensor autodiff library with a C++ engine and vugrad's TensorNode/Op API.

    import tapegrad as vg
    a = vg.TensorNode(np.random.randn(2, 2))
    loss = vg.Sum.do_forward(vg.sigmoid(a @ a))
    loss.backward()          # a.grad now holds d loss / d a
"""

from .core import (NativeOp, Op, OpNode, TensorNode, get_num_threads, is_grad_enabled, no_grad,
                   set_num_threads)
from .data import load_fashion_mnist, load_mnist, load_synth, read_idx
from .functional import celoss, logceloss, logsoftmax, sigmoid, softmax
from .nn import Linear, Module
from .ops import (Add, BatchMM, Divide, Exp, Expand, Id, Log, MatrixMultiply, Multiply, Negative, Normalize,
                  Power, RowMax, RowSum, Select, Sigmoid, Squeeze, Sub, Sum, Unsqueeze)

__version__ = "0.1.0"
