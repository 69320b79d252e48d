"""Optimisers and learning-rate schedules.

Each ``step()`` updates every parameter that has a gradient in one call into the engine (C++
kernels over the parameters' buffers, GIL released); parameters without a gradient are left alone.
"""

import math

import numpy as np

from . import _core
from .core import TensorNode


class Optimizer:
    """Base class: holds the parameters, their per-parameter state and the learning rate ``lr``."""

    _state_names = ()  # per-parameter state arrays, created at the first update

    def __init__(self, params, lr, **hyper):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty list of parameters")
        for i, p in enumerate(self.params):
            if not isinstance(p, TensorNode):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a TensorNode")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: parameter {i} was made by an op; optimisers update leaves")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be >= 0, got {lr}")
        for name in ("momentum", "weight_decay", "eps", "dampening"):
            if hyper.get(name, 0) < 0:
                raise ValueError(f"{type(self).__name__}: {name} must be >= 0, got {hyper[name]}")
        if not 0 <= hyper.get("alpha", 0) <= 1:
            raise ValueError(f"{type(self).__name__}: alpha must be in [0, 1], got {hyper['alpha']}")
        self.lr = lr
        self.hyper = hyper
        self.state = [{} for _ in self.params]  # name -> array, and "step"

    def zero_grad(self):
        """Clear the gradients of all parameters."""
        for p in self.params:
            p.grad = None

    def _states(self, name, wanted=True):
        """The state arrays called name, one per parameter; created as zeros at a parameter's first
        update (one with a gradient), None where not wanted."""
        arrays = []
        for p, st in zip(self.params, self.state):
            if wanted and name not in st and p._has_grad:
                st[name] = np.zeros(p.shape, dtype=p.dtype)
            arrays.append(st.get(name) if wanted else None)
        return arrays

    def _active(self):
        return [p._has_grad for p in self.params]

    def state_dict(self):
        """Hyper-parameters, learning rate and per-parameter state (copies)."""
        return {
            "type": type(self).__name__, "lr": self.lr, "hyper": dict(self.hyper),
            "state": {str(i): {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in st.items()}
                      for i, st in enumerate(self.state)},
        }

    def load_state_dict(self, state):
        """Restore from state_dict; ValueError when it belongs to another optimiser or other parameters."""
        if state.get("type") != type(self).__name__:
            raise ValueError(f"load_state_dict: state of a {state.get('type')} optimiser, not a {type(self).__name__}")
        saved = state.get("state", {})
        if len(saved) != len(self.params):
            raise ValueError(f"load_state_dict: state for {len(saved)} parameters, this optimiser has {len(self.params)}")
        new_state = []
        for i, p in enumerate(self.params):
            st = dict(saved[str(i)])
            for k, v in st.items():
                if isinstance(v, np.ndarray):
                    if v.shape != p.shape:
                        raise ValueError(f"load_state_dict: state {k!r} of parameter {i} has shape {v.shape}, "
                                         f"the parameter {p.shape}")
                    st[k] = np.array(v, dtype=p.dtype, order="C", copy=True)  # later steps leave `state` alone
                elif k == "step":
                    st[k] = int(v)
            new_state.append(st)
        self.state = new_state
        self.lr = float(state["lr"])
        self.hyper.update(state.get("hyper", {}))


class SGD(Optimizer):
    """p -= lr * d with d = grad + weight_decay * p, through a momentum buffer when momentum > 0
    (buf = momentum * buf + (1 - dampening) * d; Nesterov uses d + momentum * buf), as PyTorch."""

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0")
        super().__init__(params, lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay)

    def step(self):
        """Update every parameter that has a gradient, in place (one engine call)."""
        h = self.hyper
        use_momentum = h["momentum"] != 0
        first = [use_momentum and "momentum_buffer" not in st for st in self.state]  # buf = d at first
        bufs = self._states("momentum_buffer", use_momentum)
        _core.sgd_step(self.params, bufs, first,
                       _core.SgdConfig(self.lr, h["momentum"], h["dampening"], h["weight_decay"], h["nesterov"]))


class Adam(Optimizer):
    """Adam (Kingma and Ba) with bias correction; weight_decay adds weight_decay * p to the gradient."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        super().__init__(params, lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay)

    def step(self):
        """Update every parameter that has a gradient, in place (one engine call)."""
        h = self.hyper
        steps = []
        for active, st in zip(self._active(), self.state):
            if active:
                st["step"] = st.get("step", 0) + 1
            steps.append(st.get("step", 0))
        _core.adam_step(self.params, self._states("exp_avg"), self._states("exp_avg_sq"), steps,
                        _core.AdamConfig(self.lr, h["beta1"], h["beta2"], h["eps"], h["weight_decay"], self._decoupled))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): p *= 1 - lr * weight_decay."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """sq = alpha * sq + (1 - alpha) * g**2; p -= lr * g / (sqrt(sq) + eps), through a momentum
    buffer when momentum > 0; weight_decay adds weight_decay * p to the gradient (as PyTorch)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
        super().__init__(params, lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)

    def step(self):
        """Update every parameter that has a gradient, in place (one engine call)."""
        h = self.hyper
        _core.rmsprop_step(self.params, self._states("square_avg"), self._states("momentum_buffer", h["momentum"] != 0),
                           _core.RmspropConfig(self.lr, h["alpha"], h["eps"], h["weight_decay"], h["momentum"]))


RMSProp = RMSprop


class _Schedule:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def step(self):
        """Advance one epoch and set the optimiser's learning rate."""
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)

    def get_last_lr(self):
        """The learning rate the optimiser uses now."""
        return self.optimizer.lr

    def state_dict(self):
        """The schedule's position, for vg.save."""
        return {"epoch": self.epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state):
        """Resume from a state_dict(), setting the optimiser's learning rate to match."""
        self.epoch, self.base_lr = int(state["epoch"]), float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.epoch)


class StepLR(_Schedule):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch):
        """The learning rate after ``epoch`` epochs."""
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Schedule):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, constant after T_max."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, epoch):
        """The learning rate after ``epoch`` epochs."""
        t = min(epoch, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
