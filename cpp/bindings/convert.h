// Conversions between Python objects and the engine's types: numpy arrays <-> Tensors (without
// copies where possible), index arrays, shapes, and op attributes from keyword arguments.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "ops/registry.h"
#include "jit.h"
#include "tape.h"

namespace tg::py_convert {

namespace py = pybind11;

py::dtype numpy_dtype(DType dt);
// A numpy array over the tensor's buffer (no copy); the array keeps the buffer alive.
py::array to_numpy(const Tensor& t, bool writeable = true);
// Tensor from anything numpy can read; floats keep their width, integers and booleans become
// float64; anything else is a TypeError naming `what`. With share, a C-contiguous, writeable
// float32/float64 array is used in place (like torch.from_numpy); otherwise the data is copied.
Tensor to_tensor(py::handle obj, const std::string& what, bool share);
// A PyTorch-dialect tensor's memory for an array (tapegrad.tensor): floats keep their width,
// integers become int64, booleans bool; shared as to_tensor shares, else copied.
Tensor torch_tensor(py::handle data, bool share);
// What vg.jit's recorder knows of an array: where its data is, its shape, strides and dtype.
jit::Recorder::Array view_info(const py::array& a);
// Tells vg.jit's recorder, if one is active, that array `a` became tensor t (how: a
// jit::Conversion::How), so that a replay can convert a new array argument in its place.
void note_conversion(const py::array& a, int how, bool share, const Tensor& t);
// Integer index array (int64, contiguous copy); IndexError naming `op` for non-integers, as numpy.
Tensor to_index(py::handle obj, const std::string& op);
// A node for an operand of a binary op: a TensorNode is itself; a Python number takes the dtype of
// `like` (weak, as in numpy); arrays and numpy scalars keep theirs.
NodePtr as_node(py::handle obj, const Node& like, const char* op);
// The node a TensorNode object holds, or null for any other object: its holder, read after a type check
// against the class remember_node_class was given (pybind11's isinstance<Node> looks the C++ type
// up in its registry on every call: an eighth of a 2x2 op's instructions went to such lookups).
NodePtr node_or_null(py::handle obj);
// The TensorNode object of a node (None for null): py::cast(n), with the class's record looked up
// once instead of by C++ type name on every call (a third of the cost of returning a node).
py::object node_object(const NodePtr& n);
void remember_node_class(py::handle cls);  // TensorNode, once it is bound
// Makes `self`, a TensorNode object not yet initialised, hold n, as a pybind11 constructor would;
// false (and nothing done) if it holds a node already (__init__ called twice, which pybind11 ignores).
bool init_node_object(py::handle self, const NodePtr& n);
py::tuple shape_tuple(const Shape& shape);
// The name of an object's type, for messages ("float", "TensorNode").
std::string type_name(py::handle obj);
// The attributes of op `def` from keyword arguments (a dict or None), by the declarations of its
// row: TypeError for an unknown, missing or mistyped argument, ValueError for a bad choice.
Attrs make_attrs(const OpDef& def, py::handle kwargs);
// A reference to a Python object that may be dropped on any thread (it takes the GIL to do so).
std::shared_ptr<void> hold(py::object obj);

}  // namespace tg::py_convert
