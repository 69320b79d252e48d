"""``vg.jit``: record a training step once, replay it in C++.

A step is a function that runs a forward pass, a backward pass and an optimiser step::

    @vg.jit
    def step(xb, yb):
        loss = vg.logceloss(vg.logsoftmax(model(xb)), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    for xb, yb in batches:
        loss = step(vg.TensorNode(xb, requires_grad=False), yb)

The first two calls with arguments of a given signature (the shapes and dtypes of the TensorNode
and numpy array arguments, the values of the others, grad mode) run the function as written while
the engine records what it does to the tape: the ops it applies, backward passes, optimiser steps,
gradient resets. The two recordings must agree (same ops, same constants); from the third call
on, the recording is replayed in C++ on the new arguments, with no Python between the ops. The
replay runs the engine's own op and backward code, so gradients, ``.grad`` of the parameters,
version checks and the optimiser's state are those of eager mode.

What a replay cannot repeat is refused with ``vg.TraceError`` (a ValueError) naming it: Python
``Op`` classes, reading a node's value or gradient as an array (``.value``, ``.grad``, ``.item()``;
return the node and read it after the call), in-place changes outside an optimiser, and dropout
or batch norm in training mode (their masks and running statistics are drawn or updated outside
the tape). A tensor the step computes from its inputs with numpy, or draws at random, differs
between the two recording calls, and is refused with the action that used it.

A new signature records again (say, the smaller last batch of an epoch); so does a module that
the step called switching between ``train()`` and ``eval()``, and an optimiser whose
hyper-parameters (a learning-rate schedule) or state arrays changed.
"""

import functools
import threading

import numpy as np

from . import _core

TraceError = _core.TraceError

_local = threading.local()  # .notes: the recording in progress on this thread (a _Notes), if any


class _Notes:
    """What the Python layer tells a recording: the modules and optimiser groups the step used."""

    def __init__(self):
        self.modules = {}  # id -> module
        self.groups = []  # (optimiser, positions of the group's parameters, is_adam), in step order


def note_module(module):
    """Called by Module.__call__: the module's training flag is part of what a recording assumed."""
    notes = getattr(_local, "notes", None)
    if notes is not None:
        notes.modules.setdefault(id(module), module)


def note_optimiser_group(optimiser, positions, counts_steps):
    """Called by an optimiser for each group it updates; counts_steps: Adam's per-parameter counts,
    which a replay moves on (they are copied back into optimiser.state after each replay)."""
    notes = getattr(_local, "notes", None)
    if notes is not None:
        notes.groups.append((optimiser, list(positions), counts_steps))


def refuse(what, instead):
    """TraceError if this thread is recording a step: `what` cannot be replayed."""
    if getattr(_local, "notes", None) is not None:
        _core.trace_refuse(what, instead)


def _flatten(out):
    """(the nodes the step returned, a function rebuilding its return value from new nodes)."""
    if out is None:
        return [], lambda nodes: None
    if isinstance(out, _core.TensorNode):
        return [out], lambda nodes: nodes[0]
    if isinstance(out, (tuple, list)) and all(isinstance(o, _core.TensorNode) for o in out):
        kind = type(out)
        return list(out), kind
    raise TypeError("vg.jit: the step must return None, a TensorNode, or a tuple or list of TensorNodes; it "
                    f"returned a {type(out).__name__} (return the loss node and call .item() after the call)")


def _optimiser_key(optimiser):
    """The hyper-parameters of every group and the identity of the state arrays: a replay assumes both."""
    key = [v for g in optimiser.param_groups for k, v in g.items() if k != "params"]
    key += [id(v) for st in optimiser.state if st for v in st.values() if type(v) is np.ndarray]
    return key


class _Recording:
    """The program of one signature, with what its replay assumes of the Python side."""

    def __init__(self, program, notes, rebuild):
        self.program = program
        self.rebuild = rebuild
        self.modules = [(m, m.training) for m in notes.modules.values()]
        optimisers = {id(o): o for o, _, _ in notes.groups}
        self.optimisers = [(o, _optimiser_key(o)) for o in optimisers.values()]
        self.adam = [(k, o, positions) for k, (o, positions, counts) in enumerate(notes.groups) if counts]
        self.checked = False  # a second recording agreed with this one

    def valid(self):
        for m, training in self.modules:
            if m.training != training:
                return False
        for o, key in self.optimisers:
            if _optimiser_key(o) != key:
                return False
        return True

    def replay(self, args):
        for k, o, positions in self.adam:  # the counts as they are now (eager steps may have moved them)
            self.program.set_optimiser_steps(k, [o.state[i].get("step", 0) for i in positions])
        nodes = self.program.run(args)
        if self.adam:
            counts = self.program.optimiser_steps()
            for k, o, positions in self.adam:
                for i, n in zip(positions, counts[k]):
                    if n:
                        o.state[i]["step"] = n
        return self.rebuild(nodes)


class StepFunction:
    """A function recorded and replayed by vg.jit (see the module's documentation); call it as the
    function itself, with positional arguments."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._recordings = {}  # signature -> _Recording
        self._lock = threading.RLock()
        self.records = 0  # calls that ran the function (recording), for tests and curiosity
        self.replays = 0

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise TypeError(f"vg.jit: pass the arguments of {self.__name__} by position (got keyword "
                            f"{next(iter(kwargs))!r})")
        if _core.tracing() or _core.is_anomaly_enabled():
            return self._fn(*args)  # inside another recording, or debugging: run it as written
        key = _core.jit_signature(args)  # grad mode, shapes, dtypes, flags; constants by value
        rec = self._recordings.get(key)
        if rec is None or not rec.checked or not rec.valid():
            with self._lock:  # one recording at a time (threads calling one step function share its recordings)
                rec = self._recordings.get(key)
                if rec is not None and not rec.valid():
                    rec = None  # a module's mode, or an optimiser's hyper-parameters or state, changed: record again
                if rec is None or not rec.checked:
                    return self._record_and_check(key, rec, args)
        self.replays += 1
        return rec.replay(args)

    def _record_and_check(self, key, first, args):
        """Records a call; the second recording of a signature must agree with the first."""
        new, result = self._record(args)
        if first is None:
            self._recordings[key] = new
        else:
            why = first.program.difference(new.program)
            if why:
                del self._recordings[key]
                raise TraceError(f"vg.jit: {self.__name__} cannot be replayed: two calls with arguments of the same "
                                 f"shapes did different things: {why}")
            new.checked = True
            self._recordings[key] = new
        return result

    def _record(self, args):
        self.records += 1
        notes = _Notes()
        _core.trace_start(list(args))
        _local.notes = notes
        try:
            out = self._fn(*args)
            nodes, rebuild = _flatten(out)
        except BaseException:
            _core.trace_abort()
            raise
        finally:
            _local.notes = None
        program = _core.trace_stop(nodes)
        return _Recording(program, notes, rebuild), out

    def describe(self):
        """The recorded actions of each signature, one per line (a string)."""
        lines = []
        for key, rec in self._recordings.items():
            shapes = ", ".join(str(s[1]) if isinstance(s, tuple) and s[0] != "value" else repr(s[2])
                               for s in key[1:])
            state = "replayed" if rec.checked else "recorded once"
            lines.append(f"{self.__name__}({shapes}) [{state}]:")
            lines += ["  " + line for line in rec.program.describe()]
        return "\n".join(lines)

    def reset(self):
        """Forget the recordings: the next calls record again."""
        self._recordings.clear()

    def __repr__(self):
        return f"<vg.jit step {self.__name__}: {len(self._recordings)} signature(s)>"


def jit(fn):
    """Record the training step ``fn`` and replay it in C++ on later calls (see tapegrad.replay)."""
    if not callable(fn):
        raise TypeError(f"vg.jit: expected a function, got a {type(fn).__name__}")
    return StepFunction(fn)
