#include "bindings/convert.h"

#include "jit.h"

#include <limits>
#include <string_view>

namespace tg::py_convert {

using namespace pybind11::literals;

py::dtype numpy_dtype(DType dt) {
    switch (dt) {
        case DType::f32: return py::dtype::of<float>();
        case DType::f64: return py::dtype::of<double>();
        case DType::b8: return py::dtype::of<bool>();
        default: return py::dtype::of<int64_t>();
    }
}

py::array to_numpy(const Tensor& t, bool writeable) {
    auto* keep = new std::shared_ptr<Buffer>(t.buffer());
    py::capsule base(keep, [](void* p) { delete static_cast<std::shared_ptr<Buffer>*>(p); });
    std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t step = static_cast<py::ssize_t>(dtype_size(t.dtype()));
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i] = step;
        step *= shape[i];
    }
    py::array a(numpy_dtype(t.dtype()), shape, strides, t.raw(), base);
    if (!writeable) py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return a;
}

std::shared_ptr<void> hold(py::object obj) {
    return std::shared_ptr<void>(obj.release().ptr(), [](void* p) {
        py::gil_scoped_acquire gil;
        Py_DECREF(static_cast<PyObject*>(p));
    });
}

namespace {
DType float_dtype_for(const py::array& a, const std::string& what) {
    const char kind = a.dtype().kind();
    if (kind == 'f' && a.itemsize() == 4) return DType::f32;
    if (kind == 'f' && a.itemsize() == 8) return DType::f64;
    if (kind == 'f' || kind == 'i' || kind == 'u' || kind == 'b') return DType::f64;
    throw DTypeError(what + ": unsupported dtype " + std::string(py::str(a.dtype())) +
                     " (expected a float, integer or boolean array)");
}
}  // namespace

jit::Recorder::Array view_info(const py::array& a) {
    jit::Recorder::Array info;
    info.data = a.data();
    info.shape.assign(a.shape(), a.shape() + a.ndim());
    info.strides.assign(a.strides(), a.strides() + a.ndim());
    info.dtype = py::str(a.dtype());
    return info;
}

void note_conversion(const py::array& a, int how, bool share, const Tensor& t) {
    if (jit::Recorder* r = jit::recording()) r->converted(view_info(a), static_cast<jit::Conversion::How>(how), share, t);
}

namespace {
// The dtype a PyTorch tensor keeps for an array: floats their width (float16 becomes float32),
// integers int64, booleans bool.
DType torch_dtype_for(const py::array& a) {
    switch (a.dtype().kind()) {
        case 'f': return a.itemsize() == 8 ? DType::f64 : DType::f32;
        case 'i': case 'u': return DType::i64;
        case 'b': return DType::b8;
        default:
            throw DTypeError("tensor: unsupported dtype " + std::string(py::str(a.dtype())) +
                             " (expected a float, integer or boolean array)");
    }
}

// The tensor over `a`'s memory when sharing is asked and possible, else a converted copy.
Tensor share_or_copy(const py::array& a, DType dt, bool share) {
    Shape shape(a.shape(), a.shape() + a.ndim());
    if (share && a.dtype().is(numpy_dtype(dt)) && (a.flags() & py::array::c_style) && a.writeable())
        return Tensor::wrap(const_cast<void*>(a.data()), shape, dt, hold(a));
    Tensor t = Tensor::empty(shape, dt);
    py::array dst(numpy_dtype(dt), std::vector<py::ssize_t>(shape.begin(), shape.end()), t.raw(), py::none());
    py::module_::import("numpy").attr("copyto")(dst, a, "casting"_a = "unsafe");
    return t;
}
}  // namespace

Tensor torch_tensor(py::handle data, bool share) {
    py::array a = py::array::ensure(data);
    if (!a) throw DTypeError("tensor: cannot convert " + type_name(data) + " to a tensor");
    Tensor t = share_or_copy(a, torch_dtype_for(a), share);
    note_conversion(a, jit::Conversion::torch_leaf, share, t);
    return t;
}

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

Tensor to_tensor(py::handle obj, const std::string& what, bool share) {
    py::array a = py::array::ensure(obj);
    if (!a) throw DTypeError(what + ": cannot convert " + std::string(py::str(py::type::of(obj))) + " to an array");
    Tensor t = share_or_copy(a, float_dtype_for(a, what), share);
    note_conversion(a, jit::Conversion::value, share, t);
    return t;
}

Tensor to_index(py::handle obj, const std::string& op) {
    py::array a = py::array::ensure(obj);
    if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u'))
        throw std::out_of_range(op + ": indices must be integers, got " +
                                (a ? std::string(py::str(a.dtype())) : std::string(py::str(py::type::of(obj)))));
    if (a.dtype().kind() == 'u' && a.itemsize() == 8 && a.size() > 0) {
        // uint64 beyond int64's range would wrap to a negative (valid-looking) index
        auto u = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(a);
        const uint64_t* p = u.data();
        for (py::ssize_t i = 0; i < u.size(); ++i)
            if (p[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                throw std::out_of_range(op + ": index " + std::to_string(p[i]) + " is out of range");
    }
    auto c = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    Tensor t = Tensor::empty(Shape(c.shape(), c.shape() + c.ndim()), DType::i64);
    std::copy(c.data(), c.data() + c.size(), t.data<int64_t>());
    note_conversion(a, jit::Conversion::index, false, t);
    return t;
}

namespace {
// Set at import, before any call can need them; never freed.
PyTypeObject* node_class = nullptr;
const py::detail::type_info* node_record = nullptr;  // pybind11's record of the class
}  // namespace

void remember_node_class(py::handle cls) {
    node_class = reinterpret_cast<PyTypeObject*>(cls.inc_ref().ptr());
    node_record = py::detail::get_type_info(typeid(Node));
}

NodePtr node_or_null(py::handle obj) {
    if (!node_class) return py::isinstance<Node>(obj) ? obj.cast<NodePtr>() : nullptr;
    if (!PyObject_TypeCheck(obj.ptr(), node_class)) return nullptr;
    auto held = reinterpret_cast<py::detail::instance*>(obj.ptr())->get_value_and_holder(node_record, false);
    if (!held || !held.holder_constructed()) return obj.cast<NodePtr>();  // pybind11 says what is wrong
    return held.holder<NodePtr>();
}

py::object node_object(const NodePtr& n) {
    if (!n) return py::none();
    // What py::cast(n) does for a shared_ptr holder, less the lookup of the class by its C++ type.
    return py::reinterpret_steal<py::object>(py::detail::type_caster_generic::cast(
        n.get(), py::return_value_policy::take_ownership, py::handle(), node_record, nullptr, nullptr, &n));
}

bool init_node_object(py::handle self, const NodePtr& n) {
    auto v_h = reinterpret_cast<py::detail::instance*>(self.ptr())->get_value_and_holder(node_record);
    if (v_h.instance_registered()) return false;
    v_h.value_ptr() = n.get();
    v_h.type->init_instance(v_h.inst, &n);  // copies the holder, registers the instance
    return true;
}

NodePtr as_node(py::handle obj, const Node& like, const char* op) {
    if (NodePtr n = node_or_null(obj)) return n;
    Tensor t;
    // Python numbers are "weak": they take the dtype of the node they meet (x * 0.5 stays float32).
    // numpy scalars (np.float64 subclasses float) are strong, as in numpy 2.
    if (PyFloat_CheckExact(obj.ptr()) || PyBool_Check(obj.ptr())) {
        t = Tensor::full({}, like.value.dtype(), PyFloat_AsDouble(obj.ptr()));
    } else if (PyLong_CheckExact(obj.ptr())) {
        const double d = PyLong_AsDouble(obj.ptr());
        if (d == -1.0 && PyErr_Occurred()) {  // beyond float64's range, as numpy refuses it
            PyErr_Clear();
            throw std::invalid_argument(std::string(op) + ": the Python int " + std::string(py::str(obj)).substr(0, 20) +
                                        "... is too large to convert to float64");
        }
        t = Tensor::full({}, like.value.dtype(), d);
    } else {
        t = to_tensor(obj, op, false);
    }
    return std::make_shared<Node>(std::move(t), false);
}

py::tuple shape_tuple(const Shape& shape) {
    py::tuple t(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) t[i] = py::int_(shape[i]);
    return t;
}

namespace {

// Messages name the op and the argument: "squeeze: dim must be an integer, got float".
std::string where(const OpDef& def, const AttrSpec& spec) { return std::string(def.name) + ": " + spec.name; }

int64_t to_int64(py::handle obj, const OpDef& def, const AttrSpec& spec) {
    if (!PyIndex_Check(obj.ptr()))
        throw DTypeError(where(def, spec) + " must be an integer, got " + type_name(obj));
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
    if (!index) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow)
        throw std::invalid_argument(where(def, spec) + " = " + std::string(py::str(obj)) + " does not fit in 64 bits");
    return v;
}

std::vector<int64_t> to_int64s(py::handle obj, const OpDef& def, const AttrSpec& spec) {
    if (PyIndex_Check(obj.ptr())) return {to_int64(obj, def, spec)};
    if (py::isinstance<py::str>(obj) || !py::isinstance<py::iterable>(obj))
        throw DTypeError(where(def, spec) + " must be an integer or a sequence of integers, got " + type_name(obj));
    std::vector<int64_t> out;
    for (auto item : obj) out.push_back(to_int64(item, def, spec));
    return out;
}

AttrValue fallback(const AttrSpec& spec) {
    AttrValue v;
    if (spec.kind == AttrKind::axes) v.none = true;
    else if (spec.kind == AttrKind::real) v.real = spec.fallback;
    else v.ints = {static_cast<int64_t>(spec.fallback)};
    return v;
}

AttrValue convert(py::handle obj, const OpDef& def, const AttrSpec& spec, Attrs& attrs) {
    AttrValue v;
    switch (spec.kind) {
        case AttrKind::integer: v.ints = {to_int64(obj, def, spec)}; break;
        case AttrKind::integers: v.ints = to_int64s(obj, def, spec); break;
        case AttrKind::axes:
            if (obj.is_none()) v.none = true;
            else v.ints = to_int64s(obj, def, spec);
            break;
        case AttrKind::real: {
            const double d = PyFloat_AsDouble(obj.ptr());
            if (d == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                throw DTypeError(where(def, spec) + " must be a real number, got " + type_name(obj));
            }
            v.real = d;
            break;
        }
        case AttrKind::flag: {
            const int truth = PyObject_IsTrue(obj.ptr());
            if (truth < 0) throw py::error_already_set();
            v.ints = {truth};
            break;
        }
        case AttrKind::choice: {
            const auto names = choice_names(spec);
            std::string allowed;
            for (size_t k = 0; k < names.size(); ++k) {
                allowed += (k ? (k + 1 == names.size() ? " or '" : ", '") : "'") + names[k] + "'";
                if (py::isinstance<py::str>(obj) && obj.cast<std::string>() == names[k])
                    v.ints = {static_cast<int64_t>(k)};
            }
            if (v.ints.empty())
                throw std::invalid_argument(where(def, spec) + " must be " + allowed + ", got " +
                                            std::string(py::repr(obj)));
            break;
        }
        case AttrKind::indices: attrs.index = to_index(obj, def.name); break;
    }
    return v;
}

std::string accepted(const OpDef& def) {
    if (def.attrs.empty()) return "it takes no keyword arguments";
    std::string s = "it takes ";
    for (size_t i = 0; i < def.attrs.size(); ++i) s += (i ? ", " : "") + std::string(def.attrs[i].name);
    return s;
}

}  // namespace

Attrs make_attrs(const OpDef& def, py::handle kwargs) {
    Attrs attrs;
    attrs.values.reserve(def.attrs.size());
    const bool given = !kwargs.is_none() && py::len(kwargs) > 0;
    if (given)
        for (auto item : py::reinterpret_borrow<py::dict>(kwargs)) {
            const std::string key = py::str(item.first);
            if (!def.attr(key))
                throw DTypeError(std::string(def.name) + ": unexpected keyword argument '" + key + "' (" + accepted(def) + ")");
        }
    for (const AttrSpec& spec : def.attrs) {
        py::handle obj = given ? PyDict_GetItemString(kwargs.ptr(), spec.name) : nullptr;
        if (obj) attrs.values.push_back(convert(obj, def, spec, attrs));
        else if (!spec.required) attrs.values.push_back(fallback(spec));
        else throw DTypeError(std::string(def.name) + ": missing keyword argument '" + spec.name + "' (" + accepted(def) + ")");
    }
    return attrs;
}

}  // namespace tg::py_convert
