"""Optimisers and learning-rate schedules, as PyTorch's (torch.optim).

Each ``step()`` updates every parameter that has a gradient in one call into the engine per
parameter group (C++ kernels over the parameters' buffers, GIL released, PyTorch's update formulas
in PyTorch's order); parameters without a gradient (None) are left alone. ``params`` is a list or
any iterable of tensors (``net.parameters()``) or a list of parameter groups (dicts with "params"
and the hyper-parameters that differ, as PyTorch's).
"""

import math

import numpy as np

from . import _core
from . import replay as _jit
from ._torchlike import as_array
from .core import TensorNode
from .modules import clear_grads


_IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")  # PyTorch's kernel choices


def _accept_flags(who, options):
    """PyTorch's implementation switches are accepted (tapegrad has one implementation); maximize
    only as False; anything else is an unexpected keyword."""
    for name, value in options.items():
        if name == "maximize":
            if value:
                raise ValueError(f"{who}: maximize=True is not supported")
        elif name not in _IMPLEMENTATION_FLAGS:
            raise TypeError(f"{who}: unexpected keyword argument {name!r}")


class _State(list):
    """Per-parameter state (a dict of arrays and "step"), in the order of ``params``; indexed by
    position, or by the parameter itself as PyTorch's ``optimizer.state[p]``."""

    def __init__(self, params, states):
        super().__init__(states)
        self._params = params

    def __getitem__(self, key):
        if type(key) is int:
            return list.__getitem__(self, key)
        if isinstance(key, TensorNode):
            for p, st in zip(self._params, self):
                if p is key:
                    return st
            raise KeyError("this parameter is not one of the optimiser's")
        return super().__getitem__(key)


class Optimizer:
    """Base class: parameter groups (``param_groups``, dicts of "params" and hyper-parameters, as
    PyTorch's), per-parameter ``state`` and the learning rate ``lr`` (of every group)."""

    _state_names = ()  # per-parameter state arrays, created at the first update
    _counts_steps = False  # keeps a per-parameter "step" count (vg.jit's replays move it on)
    _hyper = ()  # hyper-parameter names besides lr, as PyTorch names them

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.params = []  # every parameter, group after group
        self.state = _State(self.params, [])
        groups = [params] if isinstance(params, (TensorNode, dict)) else list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty list of parameters")
        if not all(isinstance(g, dict) for g in groups):
            if any(isinstance(g, dict) for g in groups):
                raise TypeError(f"{type(self).__name__}: give parameters or parameter groups (dicts), not both")
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group: a dict with "params" (a tensor or an iterable of them) and any
        hyper-parameters that differ from the optimiser's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{type(self).__name__}: a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError(f"{type(self).__name__}: a parameter group needs 'params'")
        params = group["params"]
        params = [params] if isinstance(params, TensorNode) else list(params)
        first = len(self.params)
        seen = {id(p) for p in self.params}
        for i, p in enumerate(params, start=first):
            if not isinstance(p, TensorNode):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a TensorNode")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: parameter {i} was made by an op; optimisers update leaves")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {i} appears twice (in one group or in two)")
            seen.add(id(p))
        if len(self.param_groups) > 0 and not params:
            raise ValueError(f"{type(self).__name__}: a parameter group without parameters")
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty list of parameters")
        unknown = set(group) - {"params"} - set(self.defaults) - {"initial_lr"}
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown hyper-parameter(s) {', '.join(sorted(unknown))} "
                            "in a parameter group")
        for name, value in self.defaults.items():
            group.setdefault(name, value)
        self._check(group)
        group["params"] = params
        self.param_groups.append(group)
        self.params.extend(params)
        self.state.extend({} for _ in params)

    def _check(self, group):
        """ValueError for hyper-parameters out of range, as PyTorch's messages say."""
        who = type(self).__name__
        if group["lr"] < 0:
            raise ValueError(f"{who}: learning rate must be >= 0, got {group['lr']}")
        for name in ("momentum", "weight_decay", "eps", "dampening"):
            if group.get(name, 0) < 0:
                raise ValueError(f"{who}: {name} must be >= 0, got {group[name]}")
        if not 0 <= group.get("alpha", 0) <= 1:
            raise ValueError(f"{who}: alpha must be in [0, 1], got {group['alpha']}")

    @property
    def lr(self):
        """The learning rate (of the first group); setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of all parameters: None (set_to_none, the default: a torch tensor's
        .grad is None again, a vugrad node reads zeros), or zeros written in place."""
        clear_grads(self.params, set_to_none)

    def _groups(self):
        """(group, its parameters' positions in params and state)."""
        start = 0
        for group in self.param_groups:
            n = len(group["params"])
            yield group, range(start, start + n)
            start += n

    def _states(self, name, positions, wanted=True):
        """The state arrays called name of the parameters at positions; created as zeros at a
        parameter's first update (one with a gradient), None where not wanted."""
        arrays = []
        for i in positions:
            p, st = self.params[i], self.state[i]
            if wanted and name not in st and p._has_grad:
                st[name] = np.zeros(p.shape, dtype=p.dtype)
            arrays.append(st.get(name) if wanted else None)
        return arrays

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place (one engine call per group); with
        ``closure`` (a function that recomputes the loss and calls backward), call it first and
        return its loss."""
        loss = None
        if closure is not None:
            from .core import _core as engine  # grad recording on for the closure, as PyTorch's enable_grad
            previous = engine.is_grad_enabled()
            engine.set_grad_enabled(True)
            try:
                loss = closure()
            finally:
                engine.set_grad_enabled(previous)
        for group, positions in self._groups():
            _jit.note_optimiser_group(self, positions, self._counts_steps)
            self._step_group(group, positions)
        return loss

    def state_dict(self):
        """The optimiser's type, per-parameter state (copies, keyed "0", "1", ... by position) and
        param_groups (hyper-parameters, with "params" listing positions), as PyTorch's."""
        groups = []
        for group, positions in self._groups():
            saved = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
            saved["params"] = list(positions)
            groups.append(saved)
        return {
            "type": type(self).__name__, "lr": self.lr,
            "state": {str(i): {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in st.items()}
                      for i, st in enumerate(self.state)},
            "param_groups": groups,
        }

    def _saved_groups(self, state):
        """The param_groups of a state_dict, also from files older than param groups (lr and hyper)."""
        if "param_groups" in state:
            return state["param_groups"]
        hyper = dict(state.get("hyper", {}))
        if "beta1" in hyper:
            hyper["betas"] = (hyper.pop("beta1"), hyper.pop("beta2"))
        return [dict(hyper, lr=state["lr"], params=list(range(len(self.params))))]

    def load_state_dict(self, state_dict):
        """Restore from state_dict (this optimiser's, or PyTorch's converted with arrays or tensors
        as values); ValueError when it belongs to another optimiser or to other parameters."""
        state = state_dict
        who = type(self).__name__
        if state.get("type", who) != who:
            raise ValueError(f"load_state_dict: state of a {state.get('type')} optimiser, not a {who}")
        saved = {str(k): v for k, v in state.get("state", {}).items()}
        groups = self._saved_groups(state)
        counted = sum(len(g["params"]) for g in groups)
        if counted != len(self.params):
            raise ValueError(f"load_state_dict: state for {counted} parameters, this optimiser has {len(self.params)}")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: state for {len(groups)} parameter groups, this optimiser has "
                             f"{len(self.param_groups)}")
        if len(saved) > len(self.params) or any(not k.isdigit() or int(k) >= len(self.params) for k in saved):
            raise ValueError(f"load_state_dict: state for {len(saved)} parameters, this optimiser has {len(self.params)}")
        positions = [i for g in groups for i in g["params"]]
        new_state = [{} for _ in self.params]
        for mine, theirs in enumerate(positions):
            p = self.params[mine]
            for k, v in dict(saved.get(str(theirs), {})).items():
                if v is None:
                    continue  # PyTorch's momentum_buffer without momentum
                if k == "step":
                    new_state[mine][k] = int(float(as_array(v)))
                    continue
                v = as_array(v)
                if v.shape != p.shape:
                    raise ValueError(f"load_state_dict: state {k!r} of parameter {mine} has shape {v.shape}, "
                                     f"the parameter {p.shape}")
                new_state[mine][k] = np.array(v, dtype=p.dtype, order="C", copy=True)  # later steps leave `state` alone
        hypers = []
        for group, saved_group in zip(self.param_groups, groups):
            if len(group["params"]) != len(saved_group["params"]):
                raise ValueError(f"load_state_dict: a saved group of {len(saved_group['params'])} parameters for a "
                                 f"group of {len(group['params'])}")
            hyper = {}
            for k, v in saved_group.items():
                if k == "params":
                    continue
                if k in self.defaults:
                    hyper[k] = tuple(v) if isinstance(v, list) else v
                elif k not in _IMPLEMENTATION_FLAGS and k != "initial_lr" and v not in (False, None):
                    raise ValueError(f"load_state_dict: {who} does not support {k}={v!r}")
            hypers.append(hyper)
        self.state[:] = new_state
        for group, hyper in zip(self.param_groups, hypers):
            group.update(hyper)
            group["lr"] = float(group["lr"])


class SGD(Optimizer):
    """p -= lr * d with d = grad + weight_decay * p, through a momentum buffer when momentum > 0
    (buf = momentum * buf + (1 - dampening) * d; Nesterov uses d + momentum * buf), as PyTorch."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, **options):
        _accept_flags("SGD", options)
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _check(self, group):
        super()._check(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0")

    def _step_group(self, h, positions):
        use_momentum = h["momentum"] != 0
        first = [use_momentum and "momentum_buffer" not in self.state[i] for i in positions]  # buf = d at first
        bufs = self._states("momentum_buffer", positions, use_momentum)
        _core.sgd_step(h["params"], bufs, first,
                       _core.SgdConfig(h["lr"], h["momentum"], h["dampening"], h["weight_decay"], h["nesterov"]))


class Adam(Optimizer):
    """Adam (Kingma and Ba) with bias correction; weight_decay adds weight_decay * p to the gradient
    (decoupled_weight_decay=True: AdamW's p *= 1 - lr * weight_decay instead)."""

    _counts_steps = True

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 decoupled_weight_decay=None, **options):
        _accept_flags(type(self).__name__, options)
        if amsgrad:
            raise ValueError(f"{type(self).__name__}: amsgrad=True is not supported")
        if decoupled_weight_decay is not None:
            self._decoupled = bool(decoupled_weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check(self, group):
        b1, b2 = group["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {group['betas']}")
        super()._check(group)

    def _step_group(self, h, positions):
        steps = []
        for i in positions:
            st = self.state[i]
            if self.params[i]._has_grad:
                st["step"] = st.get("step", 0) + 1
            steps.append(st.get("step", 0))
        b1, b2 = h["betas"]
        _core.adam_step(h["params"], self._states("exp_avg", positions), self._states("exp_avg_sq", positions), steps,
                        _core.AdamConfig(h["lr"], b1, b2, h["eps"], h["weight_decay"], self._decoupled))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): p *= 1 - lr * weight_decay."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, **options):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **options)


class RMSprop(Optimizer):
    """sq = alpha * sq + (1 - alpha) * g**2; p -= lr * g / (sqrt(sq) + eps), through a momentum
    buffer when momentum > 0; weight_decay adds weight_decay * p to the gradient (as PyTorch)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 **options):
        _accept_flags("RMSprop", options)
        if centered:
            raise ValueError("RMSprop: centered=True is not supported")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum))

    def _step_group(self, h, positions):
        _core.rmsprop_step(h["params"], self._states("square_avg", positions),
                           self._states("momentum_buffer", positions, h["momentum"] != 0),
                           _core.RmspropConfig(h["lr"], h["alpha"], h["eps"], h["weight_decay"], h["momentum"]))


RMSProp = RMSprop


class _Schedule:
    """Base of the schedules: each group's learning rate follows lr_at(epoch) from its own
    starting value (``base_lrs``; ``base_lr`` is the first group's)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.epoch = 0

    @property
    def base_lr(self):
        """The first group's starting learning rate."""
        return self.base_lrs[0]

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.epoch, base)

    def step(self):
        """Advance one epoch and set the optimiser's learning rates."""
        self.epoch += 1
        self._apply()

    def get_last_lr(self):
        """The learning rate the optimiser uses now (its first group's)."""
        return self.optimizer.lr

    def state_dict(self):
        """The schedule's position, for vg.save."""
        return {"epoch": self.epoch, "base_lr": self.base_lr, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        """Resume from a state_dict(), setting the optimiser's learning rates to match."""
        self.epoch = int(state["epoch"])
        bases = state.get("base_lrs", [state["base_lr"]] * len(self.optimizer.param_groups))
        if len(bases) != len(self.optimizer.param_groups):
            raise ValueError(f"load_state_dict: a schedule of {len(bases)} groups for an optimiser of "
                             f"{len(self.optimizer.param_groups)}")
        self.base_lrs = [float(b) for b in bases]
        self._apply()


class StepLR(_Schedule):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch, base_lr=None):
        """The learning rate after ``epoch`` epochs (from base_lr, default the first group's)."""
        base = self.base_lr if base_lr is None else base_lr
        return base * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Schedule):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, constant after T_max."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, epoch, base_lr=None):
        """The learning rate after ``epoch`` epochs (from base_lr, default the first group's)."""
        base = self.base_lr if base_lr is None else base_lr
        t = min(epoch, self.T_max)
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
