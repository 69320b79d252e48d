"""tapegrad: a tensor autodiff library with a C++ engine and vugrad's TensorNode/Op API.

    import tapegrad as vg
    a = vg.TensorNode(np.random.randn(2, 2))
    loss = vg.Sum.do_forward(vg.sigmoid(a @ a))
    loss.backward()          # a.grad now holds d loss / d a
"""

from . import functional, init, methods, nn, ops, optim
from .checkpoint import load, save
from .core import Function, FunctionContext, NativeOp, Op, OpNode, TensorNode, detect_anomaly, is_grad_enabled, \
    no_grad, set_detect_anomaly, trace
from .runtime import gemm_backend, get_num_threads, set_gemm_backend, set_num_threads
from .gradcheck import GradcheckError, GradcheckReport, gradcheck, numerical_grad
from .data import load_fashion_mnist, load_mnist, load_synth, read_idx
from . import data, metrics, plot
from .draw import Drawing, draw
from .data import DataLoader, batches, load_five_points, write_idx
from .data import load_cifar10
from .init import manual_seed
from .modules import MLP, BatchNorm1d, Dropout, Linear, Module, Residual, Sequential

# Every op class (vg.Add, vg.Sigmoid ...) and every function (vg.exp, vg.sum ...).
from .ops import *  # noqa: E402,F401,F403
from .functional import *  # noqa: E402,F401,F403

__version__ = "0.1.0"
