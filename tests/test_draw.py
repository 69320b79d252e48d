"""vg.draw: the course's picture of a graph (tensors as circles, ops as diamonds).

Most tests read the DOT text (``Drawing.source``), which needs neither Graphviz's ``dot`` nor its
Python package; the tests that lay a picture out skip when ``dot`` is missing.
"""

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tapegrad as vg
from helpers import ProductAndDifference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_dot = pytest.mark.skipif(not vg.draw.available(), reason="Graphviz (Python package and dot) not installed")


def node(*shape, name=None, seed=0, requires_grad=True):
    return vg.TensorNode(np.random.default_rng(seed).standard_normal(shape), name=name, requires_grad=requires_grad)


def statements(source, shape):
    """The node statements of the DOT text drawn with this shape: {DOT id: label}."""
    found = re.findall(r'^\s*(\w+) \[shape=' + shape + r'[^\n]*?label="((?:[^"\\]|\\.)*)"', source, re.M)
    return dict(found)


def circles(drawing):
    return statements(drawing.source, "circle")


def diamonds(drawing):
    return statements(drawing.source, "diamond")


def edges(drawing):
    return set(re.findall(r"^\s*(\w+) -> (\w+)", drawing.source, re.M))


def dashed_circles(drawing):
    return re.findall(r"^\s*\w+ \[shape=circle, style=dashed", drawing.source, re.M)


# ---- the bipartite graph ----

def test_draw_of_the_course_sum_has_a_circle_per_tensor_a_diamond_per_op_and_arrows_along_the_forward_pass():
    a, b = node(2, 2, name="a"), node(2, 2, name="b", seed=1)
    c = a + b
    drawing = vg.draw(c)
    tensors, ops = circles(drawing), diamonds(drawing)
    assert sorted(tensors.values()) == ["(2, 2)\\nfloat64", "a\\n(2, 2)\\nfloat64", "b\\n(2, 2)\\nfloat64"]
    assert list(ops.values()) == ["add"]
    (op,) = ops
    ids = {label.split("\\n")[0]: i for i, label in tensors.items()}
    assert edges(drawing) == {(ids["a"], op), (ids["b"], op), (op, ids["(2, 2)"])}
    assert (drawing.tensors, drawing.ops) == (3, 1)
    assert repr(drawing) == "<Drawing of 3 tensors and 1 op: .svg, .source (DOT), .save(path)>"


def mlp_loss(reduction):
    if reduction == "logceloss":  # vugrad's model
        model = vg.MLP([2, 8, 3], activation="sigmoid", output_activation="log_softmax")
    else:
        model = vg.MLP([2, 8, 3])
    x = node(5, 2, requires_grad=False)
    targets = np.array([0, 1, 2, 0, 1])
    out = model(x)
    loss = vg.logceloss(out, targets) if reduction == "logceloss" else vg.cross_entropy(out, targets)
    return model, loss


GRAPHS = {  # name: (graph builder -> root node(s), tensors, ops in op order)
    "a + b": (lambda: node(2, 2) + node(2, 2, seed=1), 3, ["add"]),
    "a leaf alone": (lambda: node(3), 1, []),
    "a node used twice is drawn once": (lambda: (lambda c: c * c)(node(2) + 1.0), 4, ["add", "multiply"]),
    "two roots share their graph": (lambda: (lambda h: [h.sum(), h.mean()])(node(2, 3).sigmoid()), 4,
                                    ["sigmoid", "sum", "mean"]),
    "vugrad's MLP and summed loss": (lambda: mlp_loss("logceloss")[1], 13,
                                     ["linear", "sigmoid", "linear", "log_softmax", "select", "sum", "multiply"]),
    "an MLP and fused cross-entropy": (lambda: mlp_loss("mean")[1], 9, ["linear", "relu", "linear", "cross_entropy"]),
}


@pytest.mark.parametrize("build, tensors, ops", GRAPHS.values(), ids=GRAPHS.keys())
def test_draw_has_each_tensor_and_op_once_with_ops_in_forward_order(build, tensors, ops):
    drawing = vg.draw(build())
    assert len(circles(drawing)) == drawing.tensors == tensors
    assert list(diamonds(drawing).values()) == ops
    assert drawing.ops == len(ops)


def test_draw_shows_an_ops_other_outputs_while_they_live():
    product, difference = ProductAndDifference.do_forward(node(3, name="a"), node(3, name="b", seed=1))
    drawing = vg.draw(product, names={"difference": difference})
    assert list(diamonds(drawing).values()) == ["ProductAndDifference"]
    assert sorted(label.split("\\n")[0] for label in circles(drawing).values()) == ["(3,)", "a", "b", "difference"]
    del difference  # nothing holds it: the op's outputs have None in its place
    assert drawing.tensors == 4 and vg.draw(product).tensors == 3


def test_draw_puts_every_node_after_the_nodes_it_is_made_from():
    drawing = vg.draw(mlp_loss("logceloss")[1])
    order = re.findall(r"^\s*(\w+) \[", drawing.source, re.M)
    position = {name: i for i, name in enumerate(order)}
    assert all(position[a] < position[b] for a, b in edges(drawing))


def test_draw_labels_tensors_with_names_shapes_and_dtypes_and_styles_leaves_by_kind():
    w = vg.TensorNode(np.ones((3, 2), dtype=np.float32), name="W")
    x = vg.TensorNode(np.ones((4, 2), dtype=np.float32), requires_grad=False)
    drawing = vg.draw(vg.Sum.do_forward(vg.matmul(x, w.T)) * 2.0)
    source = drawing.source
    assert 'fillcolor="#cfe2ff", label="W\\n(3, 2)\\nfloat32"' in source          # a leaf that requires grad
    assert 'fillcolor="#e5e5e5", label="(4, 2)\\nfloat32"' in source             # data: no gradient
    assert 'fillcolor="#e5e5e5", label="()\\nfloat32\\n2"' in source             # a constant scalar shows itself
    assert re.search(r'fillcolor="white", label="\(\)\\nfloat32", penwidth=2.5', source)  # the root: thick
    assert list(diamonds(drawing).values()) == ["transpose", "matmul", "sum", "multiply"]


def test_draw_names_parameters_after_the_module_or_a_dict_and_keeps_names_the_nodes_have():
    model, loss = mlp_loss("mean")
    labels = [label.split("\\n")[0] for label in circles(vg.draw(loss, names=model)).values()]
    assert {"layers.0.w", "layers.0.b", "layers.1.w", "layers.1.b"} <= set(labels)
    a = node(2, name="a")
    b = node(2)
    drawn = circles(vg.draw(a * b, names={"b": b}))
    assert {label.split("\\n")[0] for label in drawn.values()} == {"a", "b", "(2,)"}
    assert circles(vg.draw(a * b, names=[("beta", b)])) != drawn


def test_draw_shows_values_and_only_the_gradients_that_are_stored_without_warnings():
    a = vg.TensorNode(np.array([[1.0, 2.0], [3.0, 4.0]]), name="a")
    h = a * 3.0
    c = h.sum()
    c.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading an intermediate's freed gradient would warn
        source = vg.draw(c, values=True, grads=True).source
    notes = re.findall(r"shape=note[^\n]*label=<(.*)>\];", source)
    assert len(notes) == 4  # a, 3.0, h, c: each has a value
    a_note = next(n for n in notes if "grad" in n)
    assert re.sub("<[^>]+>", "|", a_note) == "|value [[1. 2.]| [3. 4.]]|grad [[3. 3.]| [3. 3.]]||"
    assert sum("grad" in n for n in notes) == 3  # a, h and c: the nodes Python held kept their gradients
    assert ">value " not in vg.draw(c).source and "grad [" not in vg.draw(c, values=True).source


@pytest.mark.parametrize("retain, shown", [(True, 3), (False, 2)])
def test_draw_shows_an_intermediate_gradient_kept_by_retain_grad(retain, shown):
    a = node(2, 2)
    h = a.sigmoid()
    if retain:
        h.retain_grad()
    loss = h.sum()
    del h  # reached only through the graph: its gradient is kept only when retained
    loss.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vg.draw(loss, grads=True).source.count(">grad ") == shown  # a, loss (and h)


def test_draw_prints_the_corners_of_a_big_value_not_all_of_it():
    source = vg.draw(node(100, 100), values=True).source
    assert "..." in source and len(source) < 2000


# ---- fused ops drawn as what they fuse ----

def linear_graph(bias):
    x, w, b = node(4, 3, requires_grad=False), node(2, 3, name="W"), node(2, name="b")
    return vg.linear(x, w, b if bias else None)


EXPANDED = {  # fused op: (graph builder, the diamonds drawn for it, in order)
    "linear": (lambda: linear_graph(True), ["transpose", "matmul", "add"]),
    "linear without bias": (lambda: linear_graph(False), ["transpose", "matmul"]),
    "softmax": (lambda: vg.softmax(node(3, 4)), ["exp", "normalize"]),
    "log_softmax": (lambda: vg.log_softmax(node(3, 4)), ["logsumexp", "subtract"]),
    "cross_entropy, mean": (lambda: vg.cross_entropy(node(3, 4), [0, 1, 3]),
                            ["logsumexp", "select\\n(targets)", "subtract", "mean"]),
    "cross_entropy, sum": (lambda: vg.cross_entropy(node(3, 4), [0, 1, 3], reduction="sum"),
                           ["logsumexp", "select\\n(targets)", "subtract", "sum"]),
    "mse_loss": (lambda: vg.mse_loss(node(3), node(3, seed=1)), ["subtract", "square", "mean"]),
    "binary_cross_entropy_with_logits": (lambda: vg.binary_cross_entropy_with_logits(node(3), np.ones(3)),
                                         ["sigmoid", "binary_cross_entropy"]),
}


@pytest.mark.parametrize("build, steps", EXPANDED.values(), ids=EXPANDED.keys())
def test_expand_draws_a_fused_op_as_its_steps_in_a_dashed_box_with_unnamed_dashed_tensors_between(build, steps):
    root = build()
    fused = root.source.name
    plain, expanded = vg.draw(root), vg.draw(root, expand=True)
    assert list(diamonds(plain).values()) == [fused]
    assert list(diamonds(expanded).values()) == steps
    assert len(dashed_circles(expanded)) == len(steps) - 1
    assert re.search(r'subgraph cluster_o0 \{\n\s+graph \[[^\n]*label="' + fused + '"', expanded.source)
    assert (expanded.tensors, expanded.ops) == (plain.tensors + len(steps) - 1, len(steps))
    # the box holds only the steps and the tensors between them: inputs and output stay outside
    box = expanded.source.split("subgraph cluster_o0 {")[1].split("}")[0]
    assert not re.search(r"\bt\d+\b", box) and "->" not in box


def test_expand_of_linear_multiplies_x_by_the_transposed_weight_then_adds_the_bias():
    drawing = vg.draw(linear_graph(True), expand=True)
    ids = {label.split("\\n")[0]: i for i, label in circles(drawing).items() if label}
    ops = {label: i for i, label in diamonds(drawing).items()}
    arrows = edges(drawing)
    transposed = next(b for a, b in arrows if a == ops["transpose"])
    product = next(b for a, b in arrows if a == ops["matmul"])
    assert (ids["W"], ops["transpose"]) in arrows
    assert {(ids["(4, 3)"], ops["matmul"]), (transposed, ops["matmul"])} <= arrows
    assert {(product, ops["add"]), (ids["b"], ops["add"]), (ops["add"], ids["(4, 2)"])} <= arrows


def test_expand_with_a_set_expands_only_the_ops_named():
    _, loss = mlp_loss("logceloss")
    drawing = vg.draw(loss, expand={"log_softmax"})
    assert list(diamonds(drawing).values()) == ["linear", "sigmoid", "linear", "logsumexp", "subtract", "select", "sum",
                                                "multiply"]
    assert list(diamonds(vg.draw(loss, expand="linear")).values())[:3] == ["transpose", "matmul", "add"]


def test_expand_names_the_unknown_op_and_the_known_ones():
    with pytest.raises(ValueError, match=r"vg.draw: no expansion is known for 'sigmoid'; expand=True or a set of: "
                                         r"binary_cross_entropy_with_logits, cross_entropy, linear"):
        vg.draw(node(2), expand={"sigmoid", "linear"})


# ---- size limit, deep graphs, bad input ----

def chain(length):
    x = node(2)
    for _ in range(length):
        x = x * 1.0
    return x


def test_draw_refuses_a_graph_over_max_nodes_and_says_how_to_raise_the_limit():
    root = chain(100)  # 100 ops, 100 constants, 101 tensors
    with pytest.raises(ValueError, match=r"more than max_nodes=200 nodes .*vg.draw\(node, max_nodes=2000\)"):
        vg.draw(root)
    assert vg.draw(root, max_nodes=301).ops == 100
    with pytest.raises(ValueError, match="max_nodes=300"):
        vg.draw(root, max_nodes=300)


def test_draw_counts_the_steps_of_expanded_ops_against_the_limit():
    root = linear_graph(True)  # 4 tensors and 1 op; expanded: 6 tensors and 3 ops
    assert vg.draw(root, expand=True, max_nodes=9).ops == 3
    with pytest.raises(ValueError, match="max_nodes=8"):
        vg.draw(root, expand=True, max_nodes=8)


def test_draw_walks_a_graph_deeper_than_the_recursion_limit():
    root = chain(5 * sys.getrecursionlimit())
    drawing = vg.draw(root, max_nodes=None)
    assert drawing.ops == 5 * sys.getrecursionlimit()


@pytest.mark.parametrize("call, error, message", [
    (lambda: vg.draw(3.0), TypeError, "vg.draw: expected a TensorNode .* got float"),
    (lambda: vg.draw([]), ValueError, "vg.draw: got an empty list"),
    (lambda: vg.draw(node(2), max_nodes=0), ValueError, "max_nodes must be a positive integer or None, got 0"),
    (lambda: vg.draw(node(2), direction="up"), ValueError, "direction must be 'LR', 'RL', 'TB' or 'BT', got 'up'"),
    (lambda: vg.draw(node(2), names={"a": np.ones(2)}), TypeError, "names must map names to nodes"),
    (lambda: vg.draw(node(2)).save("graph.jpg"), ValueError,
     r"Drawing.save: cannot tell the format of 'graph.jpg' from its suffix; use \.svg"),
    (lambda: vg.draw(node(2)).save("graph.svg", format="jpg"), ValueError, "format must be 'svg', .* got 'jpg'"),
], ids=["not a node", "no nodes", "max_nodes 0", "direction", "names", "suffix", "format"])
def test_draw_rejects_bad_arguments_naming_them(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---- rendering: Graphviz present, or a clear error ----

def test_save_as_dot_writes_the_source_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # as if the package were not installed
    drawing = vg.draw(node(2) + 1.0, tmp_path / "sub" / "graph.dot")
    assert (tmp_path / "sub" / "graph.dot").read_text() == drawing.source


def test_rendering_without_the_graphviz_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    drawing = vg.draw(node(2) + 1.0)
    with pytest.raises(ImportError, match=r'graphviz Python package .* pip install graphviz \(in a tapegrad checkout: pip install "\.\[draw\]"\)'):
        drawing.svg
    assert not vg.draw.available()


def test_rendering_without_dot_says_to_install_graphviz(tmp_path, monkeypatch):
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH on which there is no dot
    drawing = vg.draw(node(2) + 1.0)
    with pytest.raises(RuntimeError, match=r"dot program .* not on PATH; .*apt-get install graphviz"):
        drawing._repr_svg_()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        vg.draw(node(2), tmp_path / "graph.png")
    assert not vg.draw.available()


SVG_OPTIONS = {  # name: model -> options of vg.draw
    "plain": lambda model: {},
    "expanded with notes": lambda model: {"expand": True, "values": True, "grads": True, "title": 'a "title"'},
    "top to bottom, odd names": lambda model: {"direction": "TB", "names": {'we\\ird "name" <&>': model.layers[0].w}},
}


@needs_dot
@pytest.mark.parametrize("options", SVG_OPTIONS.values(), ids=SVG_OPTIONS.keys())
def test_svg_has_an_ellipse_per_tensor_and_a_polygon_per_op(options):
    model, loss = mlp_loss("logceloss")
    loss.backward()
    drawing = vg.draw(loss, **options(model))
    svg = drawing.svg
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert len(re.findall(r'<g id="node\d+" class="node">\s*<title>t\d+</title>\s*<ellipse', svg)) == \
        drawing.tensors - len(dashed_circles(drawing))
    assert len(re.findall(r'<title>o\d+(?:_\d+)?</title>\s*<polygon', svg)) == drawing.ops
    assert drawing._repr_svg_() == svg


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF")])
def test_draw_writes_the_picture_in_the_format_of_the_suffix(tmp_path, suffix, magic):
    path = tmp_path / f"graph{suffix}"
    vg.draw(node(2, 2, name="a") + node(2, 2, name="b"), path)
    assert path.read_bytes().startswith(magic)


# ---- train_mlp.py --draw ----

def train_mlp(*args, path=None):
    """Run experiments/train_mlp.py with args; path: the PATH it sees (where dot is looked for)."""
    env = dict(os.environ) if path is None else dict(os.environ, PATH=path)
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "train_mlp.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def test_train_mlp_draws_the_first_steps_graph_and_trains_on(tmp_path):
    result = train_mlp("-e", "2", "--seed", "0", "--draw", tmp_path / "step.dot")
    assert result.returncode == 0, result.stderr
    assert "## drew the first step's graph (13 tensors, 7 ops)" in result.stdout
    assert len(re.findall(r"validation accuracy: ", result.stdout)) == 2
    source = (tmp_path / "step.dot").read_text()
    assert "layers.0.w\\n(8, 2)\\nfloat64" in source and 'label="log_softmax"' in source


@needs_dot
def test_train_mlp_draws_an_svg(tmp_path):
    result = train_mlp("-e", "1", "--draw", tmp_path / "step.svg")
    assert result.returncode == 0, result.stderr
    assert "</svg>" in (tmp_path / "step.svg").read_text()


def test_train_mlp_refuses_a_drawing_format_it_cannot_write(tmp_path):
    result = train_mlp("-e", "1", "--draw", tmp_path / "step.jpg")
    assert result.returncode != 0 and "--draw" in result.stderr and ".svg, .png, .pdf" in result.stderr


def test_train_mlp_without_graphviz_explains_what_to_install_and_trains_on(tmp_path):
    result = train_mlp("-e", "1", "--draw", tmp_path / "step.png", path=str(tmp_path))  # no dot on PATH
    assert result.returncode == 0, result.stderr
    assert "## --draw: no picture: " in result.stderr and "apt-get install graphviz" in result.stderr
    assert "validation accuracy: " in result.stdout and not (tmp_path / "step.png").exists()


# ---- the README's example ----

def test_readme_drawing_example_runs_and_its_picture_is_committed(tmp_path):
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    section = readme.split("## Drawing the graph")[1]
    code = section.split("```python\n")[1].split("```")[0]
    picture = "docs/graph_a_plus_b.svg"
    assert picture in code and f"]({picture})" in section
    exec(code.replace(picture, str(tmp_path / "graph.dot")), {"np": np, "vg": vg})
    drawn = vg.Drawing((tmp_path / "graph.dot").read_text(), 3, 1)
    assert sorted(label.split("\\n")[0] for label in circles(drawn).values()) == ["a", "b", "c"]
    assert list(diamonds(drawn).values()) == ["add"]
    with open(os.path.join(ROOT, picture)) as f:
        svg = f.read()
    assert "</svg>" in svg and svg.count("<ellipse") == 3 and ">add</text>" in svg
