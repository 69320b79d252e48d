"""tapegrad: a tensor autodiff library with a C++ engine and vugrad's TensorNode/Op API.

    import tapegrad as vg
    a = vg.TensorNode(np.random.randn(2, 2))
    loss = vg.Sum.do_forward(vg.sigmoid(a @ a))
    loss.backward()          # a.grad now holds d loss / d a
"""

from . import functional, init, nn, ops, optim
from .checkpoint import load, save
from .core import (Function, FunctionContext, NativeOp, Op, OpNode, TensorNode, detect_anomaly, gemm_backend,
                   get_num_threads, is_grad_enabled, no_grad, set_detect_anomaly, set_gemm_backend, set_num_threads)
from .gradcheck import GradcheckError, GradcheckReport, gradcheck, numerical_grad
from .data import load_fashion_mnist, load_mnist, load_synth, read_idx
from . import data, metrics, plot
from .draw import Drawing, draw
from .data import DataLoader, batches, load_five_points, write_idx
from .functional import (abs, add, binary_cross_entropy, binary_cross_entropy_with_logits, broadcast_to, celoss,
                         clip, concatenate, cross_entropy, divide, equal, exp, expand_dims, flatten, getitem,
                         greater, greater_equal, leaky_relu, less, less_equal, linear, log, log_softmax,
                         logceloss, logsoftmax, logsumexp, matmul, max, maximum, mean, min, minimum, mse_loss, nll_loss,
                         multiply, negative, not_equal, power, relu, reshape, sigmoid, softmax, softplus, sqrt,
                         square, squeeze, stack, subtract, sum, tanh, transpose, unsqueeze, var)
from .init import manual_seed
from .nn import MLP, BatchNorm1d, Dropout, Linear, Module, Residual, Sequential
from .ops import (Abs, Add, BatchMM, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, BroadcastTo, Clip,
                  Concatenate, CrossEntropy, Divide, Equal, Exp, Expand, FusedLinear, Gather, GetItem, Greater,
                  GreaterEqual, Id, LeakyReLU, Less, LessEqual, Log, LogSoftmax, LogSumExp, MatrixMultiply, Max,
                  Maximum, Mean, Min, Minimum, MSELoss, Multiply, Negative, Normalize, NotEqual, Power, ReLU,
                  Reshape, RowMax, RowSum, Select, Sigmoid, Softmax, Softplus, Sqrt, Square, Squeeze, Sub, Sum,
                  Tanh, Transpose, Unsqueeze, Var)

__version__ = "0.1.0"
