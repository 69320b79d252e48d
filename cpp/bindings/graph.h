// What the bindings of the graph (nodes.cpp) share with those of the PyTorch dialect (dialect.cpp).
#pragma once

#include <vector>

#include <pybind11/typing.h>

#include "bindings/convert.h"

namespace tg {

const OpDef& def_of(int op);  // row `op` of the op table (IndexError beyond it)
// tg::apply with the GIL released for large inputs, remembering the Python stack in anomaly mode.
Nodes apply_op(int op, Nodes inputs, Attrs attrs);
// A leaf for TensorNode(value, source, name, requires_grad): TypeError for a node as value,
// ValueError for a source.
NodePtr new_leaf(pybind11::handle value, pybind11::handle source, pybind11::handle name, bool requires_grad);
// One node as itself, several as a list.
pybind11::object nodes_out(const Nodes& nodes);
// The nodes as a list of TensorNodes.
pybind11::typing::List<Node> node_list(const Nodes& nodes);
// Input i of op `def`: the node of a TensorNode, or a TypeError naming the op.
NodePtr input_node(const OpDef& def, pybind11::handle x, size_t i);
// The inputs of op `def` as nodes: TypeError naming the op for anything that is not a TensorNode.
Nodes node_inputs(const OpDef& def, pybind11::handle inputs);

}  // namespace tg
