"""The course's picture of a computation graph: tensors as circles, ops as diamonds.

    d = vg.draw(loss)                      # a Drawing; in a notebook it shows itself
    d.svg                                  # the SVG text
    vg.draw(loss, "graph.png", names=model, expand=True)   # also written to a file

The graph is the bipartite graph of the tape below the given node(s): every TensorNode is a circle
(its name, shape and dtype; its value and gradient on request), every OpNode a diamond (the op's
name, as ``op.name`` gives it), with arrows in the direction of the forward pass. Leaves that
require grad are blue, leaves that do not (data, constants) grey, the node(s) drawn from have a
thick border. Fused ops (``linear``, ``cross_entropy``, ``softmax``, ...) can be drawn as the
primitive ops they fuse (``expand=True``), inside a dashed box named after the fused op.

Laying out the picture needs Graphviz: the Python package (``pip install graphviz``, or ``pip install ".[draw]"``
in a tapegrad checkout) and its
``dot`` program (Debian/Ubuntu: ``apt-get install graphviz``). Without them, ``Drawing.source`` still
gives the DOT text, and rendering raises an error saying what to install.
"""

import os
import shutil
from collections.abc import Mapping

import numpy as np

from .core import TensorNode

__all__ = ["Drawing", "draw", "available", "EXPANSIONS", "MAX_NODES"]

MAX_NODES = 200  # tensors and ops; beyond this a picture is hard to read and slow to lay out
INSTALL_HINT = ('pip install graphviz (in a tapegrad checkout: pip install ".[draw]") for the Python package, '
                "and Graphviz's dot program: apt-get install graphviz (Debian/Ubuntu), brew install graphviz "
                "(macOS), or https://graphviz.org/download/")
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}

# Display rules, one entry per fused op of the engine that has a short teaching decomposition. A step
# is (op label, argument, ...): "x0", "x1", ... are the fused op's inputs, "s0", "s1", ... the results
# of earlier steps, and the last step makes the fused op's output. A step that names an input the op
# was not given (linear without a bias) is left out and passes its first argument on. "{reduction}"
# is the loss's reduction, "mean" or "sum".
EXPANSIONS = {
    "linear": [("transpose", "x1"), ("matmul", "x0", "s0"), ("add", "s1", "x2")],      # x @ W.T + b
    "softmax": [("exp", "x0"), ("normalize", "s0")],                                   # exp(x) / row sums
    "log_softmax": [("logsumexp", "x0"), ("subtract", "x0", "s0")],                         # x - logsumexp(x)
    "cross_entropy": [("logsumexp", "x0"), ("select\n(targets)", "x0"), ("subtract", "s0", "s1"),
                      ("{reduction}", "s2")],                                          # lse(x_i) - x_i[t_i]
    "mse_loss": [("subtract", "x0", "x1"), ("square", "s0"), ("{reduction}", "s1")],        # (p - t) ** 2
    "binary_cross_entropy_with_logits": [("sigmoid", "x0"), ("binary_cross_entropy", "s0", "x1")],
}

_STYLE = {
    "graph": 'fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.3',
    "node": 'fontname="Helvetica", fontsize=10, margin=0.02',
    "edge": 'arrowsize=0.6, color="#555555"',
    "tensor": 'shape=circle, style=filled, fillcolor="white"',
    "parameter": 'shape=circle, style=filled, fillcolor="#cfe2ff"',
    "constant": 'shape=circle, style=filled, fillcolor="#e5e5e5"',
    "intermediate": 'shape=circle, style=dashed, label="", width=0.25, fixedsize=true',
    "note": 'shape=note, color="#aaaaaa", margin=0.05',
    "note_edge": 'style=dashed, arrowhead=none, color="#999999"',
    "op": 'shape=diamond, style=filled, fillcolor="#fff0c2"',
    "cluster": 'style=dashed, color="#888888", fontcolor="#666666", fontsize=9',
}


def available():
    """True when drawings can be rendered: the graphviz package imports and ``dot`` is on PATH."""
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def _render(source, fmt):
    """DOT text -> bytes of the picture in fmt ("svg", "png", "pdf"), laid out by Graphviz's dot."""
    try:
        import graphviz
    except ImportError:
        raise ImportError("vg.draw needs the graphviz Python package to render a picture, which is not installed; "
                          f"install it with {INSTALL_HINT}. Without it, drawing.source is the DOT text.") from None
    try:
        return graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise RuntimeError("vg.draw needs Graphviz's dot program to lay out the picture, and it is not on PATH; "
                           f"install it: {INSTALL_HINT}. Without it, drawing.source is the DOT text.") from None


class Drawing:
    """A drawn graph: ``source`` is its DOT text, ``svg`` the SVG text (laid out on first use).

    ``save(path)`` writes it as SVG, PNG, PDF or DOT (by the file's suffix); a notebook shows it
    through ``_repr_svg_``. ``tensors`` and ``ops`` count the circles and diamonds drawn.
    """

    def __init__(self, source, tensors, ops):
        self.source = source
        self.tensors = tensors
        self.ops = ops
        self._svg = None

    @property
    def svg(self):
        """The picture as SVG text (needs Graphviz; see the module's docstring)."""
        if self._svg is None:
            self._svg = _render(self.source, "svg").decode("utf-8")
        return self._svg

    def _repr_svg_(self):
        return self.svg

    def save(self, path, format=None):
        """Write the picture to path, creating its folder; the format ("svg", "png", "pdf" or "dot")
        comes from the suffix unless given. Returns path."""
        fmt = format if format is not None else FORMATS.get(os.path.splitext(os.fspath(path))[1].lower())
        if format is None and fmt is None:
            raise ValueError(f"Drawing.save: cannot tell the format of {os.fspath(path)!r} from its suffix; use "
                             f"{', '.join(FORMATS)}, or pass format='svg', 'png', 'pdf' or 'dot'")
        if fmt not in set(FORMATS.values()):
            raise ValueError(f"Drawing.save: format must be 'svg', 'png', 'pdf' or 'dot', got {fmt!r}")
        if fmt == "dot":
            data = self.source.encode("utf-8")
        elif fmt == "svg":
            data = self.svg.encode("utf-8")
        else:
            data = _render(self.source, fmt)
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        os.makedirs(folder, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def __repr__(self):
        counts = f"{self.tensors} tensor{'s' * (self.tensors != 1)} and {self.ops} op{'s' * (self.ops != 1)}"
        return f"<Drawing of {counts}: .svg, .source (DOT), .save(path)>"


def _quote(text):
    """text as a quoted DOT string; line breaks become dot's centred line breaks."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n") + '"'


def _html_note(texts):
    """texts (which may span lines) as a DOT HTML label in a small fixed-width font, left-aligned."""
    rows = "\n".join(texts).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").split("\n")
    return '<<font face="Courier" point-size="8">' + "".join(r + '<br align="left"/>' for r in rows) + "</font>>"


def _array_text(array):
    """A short printout of an array for a label: all of a small one, corners of a big one."""
    array = np.asarray(array)
    if array.size == 1:
        return f"{array.reshape(()).item():.4g}"
    return np.array2string(array, precision=3, threshold=9, edgeitems=2, suppress_small=True, max_line_width=48)


def _roots(node):
    roots = list(node) if isinstance(node, (list, tuple)) else [node]
    if not roots:
        raise ValueError("vg.draw: got an empty list of nodes; pass a TensorNode (or a list of them)")
    for r in roots:
        if not isinstance(r, TensorNode):
            raise TypeError(f"vg.draw: expected a TensorNode (or a list of them), got {type(r).__name__}")
    return roots


def _names(names):
    """{id(node): name} from a mapping name -> node, pairs (name, node), or a Module's parameters."""
    if names is None:
        return {}, []
    if hasattr(names, "named_parameters"):
        names = names.named_parameters()
    pairs = list(names.items() if isinstance(names, Mapping) else names)
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], TensorNode)):
            raise TypeError(f"vg.draw: names must map names to nodes (a dict, (name, node) pairs or a Module), "
                            f"got the entry {pair!r}")
    return {id(node): name for name, node in pairs}, pairs  # the pairs keep the nodes alive, so ids stay unique


def _expanded(expand):
    if expand is None or expand is False:
        return frozenset()
    if expand is True:
        return frozenset(EXPANSIONS)
    chosen = frozenset([expand] if isinstance(expand, str) else expand)
    unknown = sorted(chosen - set(EXPANSIONS))
    if unknown:
        raise ValueError(f"vg.draw: no expansion is known for {', '.join(map(repr, unknown))}; "
                         f"expand=True or a set of: {', '.join(sorted(EXPANSIONS))}")
    return chosen


def _too_big(max_nodes):
    return ValueError(f"vg.draw: the graph has more than max_nodes={max_nodes} nodes (tensors and ops), too many "
                      "to read in one picture (and slow to lay out); draw a smaller part of it (a node nearer the "
                      "inputs, a model with fewer layers) or raise the limit: vg.draw(node, max_nodes=2000) "
                      "(max_nodes=None: no limit)")


def _walk(roots, max_nodes):
    """(is an op, node) for the tensors and ops below roots, each after what it is made from.

    Iterative depth-first search (graphs can be deeper than Python's recursion limit); the lists
    hold the wrappers, so their ids identify them while the walk's result lives.
    """
    order = []
    seen = set()
    stack = [(False, r, False) for r in reversed(roots)]  # (is an op, tensor or op, its inputs are placed)
    while stack:
        is_op, item, placed = stack.pop()
        if placed:
            order.append((is_op, item))
            for out in item.outputs if is_op else ():  # outputs of an op that nothing below the roots reads
                if out is not None and id(out) not in seen:
                    seen.add(id(out))
                    order.append((False, out))
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if max_nodes is not None and len(seen) > max_nodes:
            raise _too_big(max_nodes)
        stack.append((is_op, item, True))
        if is_op:
            stack.extend((False, x, False) for x in reversed(item.inputs) if x is not None and id(x) not in seen)
        elif item.source is not None and id(item.source) not in seen:
            stack.append((True, item.source, False))
    return order


def _reduction(op):
    """"mean" or "sum": the reduction of a native loss op, from its engine constants."""
    try:
        return op.context["attrs"]["reduction"]
    except (KeyError, IndexError, TypeError, AttributeError, RuntimeError):
        return "mean or sum"


def draw(node, path=None, *, names=None, values=False, grads=False, expand=False, max_nodes=MAX_NODES,
         direction="LR", title=None):
    """Draw the computation graph below node (a TensorNode, or a list of them) as the course does:
    tensors as circles, ops as diamonds. Returns a Drawing (``.svg``, ``.source``, ``.save(path)``).

    path: also write the picture there (SVG, PNG, PDF or DOT, by the suffix).
    names: names for nodes that have none: a dict name -> node, (name, node) pairs, or a Module
        (its ``named_parameters()``, e.g. "layers.0.w").
    values, grads: print each tensor's value (all of a small array, the corners of a big one) and its
        gradient where one is stored (leaves after backward; other nodes after ``retain_grad()``).
    expand: True, or a set of fused op names (keys of ``tapegrad.draw.EXPANSIONS``: "linear",
        "cross_entropy", "softmax", ...), to draw those ops as the primitive ops they fuse, with the
        tensors in between as small dashed circles (e.g. linear as transpose, matmul, add).
    max_nodes: refuse (ValueError) graphs of more tensors and ops than this; None for no limit.
    direction: "LR" (inputs on the left), "RL", "TB" (inputs on top) or "BT".
    title: a caption above the picture.

    Only the DOT text is made here; laying it out (``.svg``, ``_repr_svg_``, a path) needs Graphviz.
    """
    roots = _roots(node)
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1):
        raise ValueError(f"vg.draw: max_nodes must be a positive integer or None, got {max_nodes!r}")
    if direction not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"vg.draw: direction must be 'LR', 'RL', 'TB' or 'BT', got {direction!r}")
    expanded = _expanded(expand)
    given_names, _named = _names(names)  # _named holds the named nodes, so their ids stay theirs
    order = _walk(roots, max_nodes)

    tid = {id(t): f"t{i}" for i, t in enumerate(t for is_op, t in order if not is_op)}
    root_ids = {id(r) for r in roots}
    lines = ["digraph tapegrad {",
             f"  graph [rankdir={direction}, {_STYLE['graph']}"
             + (f", label={_quote(title)}, labelloc=t" if title else "") + "];",
             f"  node [{_STYLE['node']}];", f"  edge [{_STYLE['edge']}];"]
    drawn_tensors, drawn_ops, k = len(tid), 0, -1  # k: the op's number
    for is_op, item in order:  # in forward order, which dot's layout follows where it can
        if not is_op:
            lines += _tensor_lines(item, tid[id(item)], given_names.get(id(item)), id(item) in root_ids, values,
                                   grads)
            continue
        k += 1
        inputs = [tid[id(x)] for x in item.inputs if x is not None]
        outputs = [tid[id(y)] for y in item.outputs if y is not None]
        if item.name in expanded and len(outputs) == 1:
            body, made_tensors, made_ops = _expand(item, k, inputs, outputs[0])
            lines += body
            drawn_tensors += made_tensors
            drawn_ops += made_ops
            continue
        lines.append(f"  o{k} [{_STYLE['op']}, label={_quote(item.name)}];")
        lines += [f"  {x} -> o{k};" for x in inputs] + [f"  o{k} -> {y};" for y in outputs]
        drawn_ops += 1
    if max_nodes is not None and drawn_tensors + drawn_ops > max_nodes:
        raise _too_big(max_nodes)
    lines.append("}")
    drawing = Drawing("\n".join(lines) + "\n", drawn_tensors, drawn_ops)
    if path is not None:
        drawing.save(path)
    return drawing


def _tensor_lines(t, dot_id, name, root, values, grads):
    """DOT lines of tensor t: its circle, and a note of its value and gradient when asked for."""
    name = name or t.name
    leaf = t.source is None
    label = ([name] if name else []) + [str(tuple(t.shape)), str(t.dtype)]
    if leaf and not t.requires_grad and int(np.prod(t.shape)) == 1 and not values:
        label.append(_array_text(t.value))  # a constant scalar (a loss's -1) shows itself
    notes = []  # values and gradients beside the circle, not in it: a matrix would make it huge
    if values:
        notes.append("value " + _array_text(t.value))
    if grads and t._has_grad:  # reading .grad where none is kept would warn
        notes.append("grad " + _array_text(t.grad))
    kind = ("parameter" if t.requires_grad else "constant") if leaf else "tensor"
    lines = [f"  {dot_id} [{_STYLE[kind]}, label={_quote(chr(10).join(label))}{', penwidth=2.5' if root else ''}];"]
    if notes:  # in the circle's rank (beside it, across the flow), tied to it by a dashed line
        lines.append(f"  {dot_id}n [{_STYLE['note']}, label={_html_note(notes)}];")
        lines.append(f"  {{rank=same; {dot_id} -> {dot_id}n [{_STYLE['note_edge']}];}}")
    return lines


def _expand(op, k, inputs, output):
    """DOT lines of fused op number k drawn as its steps (EXPANSIONS), the ops and the tensors
    between them in a dashed box; also the numbers of those tensors and ops."""
    refs = {f"x{i}": x for i, x in enumerate(inputs)}  # step arguments -> DOT node ids
    steps = []
    for i, (label, *args) in enumerate(EXPANSIONS[op.name]):
        if any(a.startswith("x") and a not in refs for a in args):
            refs[f"s{i}"] = refs[args[0]]  # an absent optional input: the step is the identity
            continue
        if "{reduction}" in label:
            label = label.replace("{reduction}", _reduction(op))
        refs[f"s{i}"] = f"m{k}_{i}"
        steps.append((f"o{k}_{i}", label, [refs[a] for a in args], refs[f"s{i}"]))
    steps[-1] = steps[-1][:3] + (output,)  # the last step makes the fused op's own output
    nodes, edges = [], []
    for name, label, args, result in steps:
        nodes.append(f"    {name} [{_STYLE['op']}, label={_quote(label)}];")
        if result != output:
            nodes.append(f"    {result} [{_STYLE['intermediate']}];")
        edges += [f"  {a} -> {name};" for a in args] + [f"  {name} -> {result};"]
    # only nodes are declared in the box: an edge inside a subgraph would pull its ends into it
    lines = [f"  subgraph cluster_o{k} {{", f"    graph [{_STYLE['cluster']}, label={_quote(op.name)}];"]
    return lines + nodes + ["  }"] + edges, len(steps) - 1, len(steps)


# `tapegrad.draw` is this function once the package is imported (its __init__ imports it over the
# module's name), so the module's public names are reachable from it as well: vg.draw.available().
draw.available, draw.EXPANSIONS, draw.FORMATS, draw.MAX_NODES = available, EXPANSIONS, FORMATS, MAX_NODES
