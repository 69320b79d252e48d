"""tapegrad: a tensor autodiff library with a C++ engine and vugrad's TensorNode/Op API.

    import tapegrad as vg
    a = vg.TensorNode(np.random.randn(2, 2))
    loss = vg.Sum.do_forward(vg.sigmoid(a @ a))
    loss.backward()          # a.grad now holds d loss / d a
"""

from . import functional, init, methods, nn, ops, optim
from .checkpoint import load, save
from .core import Function, FunctionContext, NativeOp, Op, OpNode, TensorNode, detect_anomaly, enable_grad, \
    is_grad_enabled, no_grad, set_detect_anomaly, set_grad_enabled, trace
from .runtime import gemm_backend, get_num_threads, set_gemm_backend, set_num_threads
from .runtime import get_flush_denormal, set_flush_denormal
from .runtime import bf16_kernel, get_float32_matmul_precision, set_float32_matmul_precision
from .runtime import buffer_cache_info, release_buffer_cache, set_buffer_cache_limit
from .gradcheck import GradcheckError, GradcheckReport, gradcheck, numerical_grad
from .data import load_fashion_mnist, load_mnist, load_synth, read_idx
from . import data, metrics, plot
from .draw import Drawing, draw
from .replay import StepFunction, TraceError, jit
from .data import DataLoader, batches, load_five_points, write_idx
from .data import load_cifar10
from .init import manual_seed
from .modules import MLP, BatchNorm1d, Dropout, Linear, Module, Residual, Sequential

# Every op class (vg.Add, vg.Sigmoid ...) and every function (vg.exp, vg.sum ...).
from .ops import *  # noqa: E402,F401,F403
from .functional import *  # noqa: E402,F401,F403

# PyTorch's names (tapegrad.pytorch: the dialect's factories, dtypes and functions). Where vugrad's
# functions have the same name (sum, max, transpose, squeeze, stack ...), these accept both.
from .pytorch import Tensor, arange, argmax, argmin, as_tensor, bool, cat, clamp, double, empty, empty_like, \
    float, float32, float64, from_dlpack, from_numpy, full, full_like, get_default_dtype, int64, is_tensor, \
    linspace, long, matmul, max, mean, meshgrid, min, mul, numel, ones, ones_like, permute, rand, rand_like, \
    randint, randn, randn_like, set_default_dtype, squeeze, stack, sum, tensor, transpose, unsqueeze, zeros, \
    zeros_like  # noqa: E402,A004
from .pytorch import all, any  # noqa: E402,A004
from . import autograd  # noqa: E402
from . import utils  # noqa: E402 (tapegrad.utils.data: PyTorch's data loading)

__version__ = "0.1.0"
