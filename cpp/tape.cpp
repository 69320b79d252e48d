#include "tape.h"

#include "address_map.h"
#include "jit.h"

#include <Eigen/Core>
#include <functional>

namespace tg {

namespace {
thread_local bool grad_mode = true;
thread_local bool anomaly_mode = false;

// The lists of one backward start with room for this many ops, which a small model's graph holds
// (grown from empty, each took four allocations: a tenth of the synth step's 92 per replay).
constexpr size_t kTypicalOps = 16;

// Visits every op node below `root` once (each before the op nodes below it are left), calling
// visit(op) in post-order: inputs' sources first. Iterative, so graph depth is bounded only by
// memory; the visited set is the caller's own, so traversals on several threads do not interfere.
template <class Visit> void post_order(const NodePtr& root, Visit&& visit) {
    if (!root->source) return;
    AddressMap<bool> seen;
    seen.reserve(kTypicalOps);
    seen.insert(root->source.get());
    std::vector<std::pair<OpNodePtr, size_t>> stack;
    stack.reserve(kTypicalOps);
    stack.emplace_back(root->source, 0);
    while (!stack.empty()) {
        OpNode* op = stack.back().first.get();
        size_t& next = stack.back().second;
        if (next < op->inputs.size()) {
            const OpNodePtr& src = op->inputs[next++]->source;
            if (src && seen.insert(src.get()).second) stack.emplace_back(src, 0);
        } else {
            OpNodePtr done = std::move(stack.back().first);
            stack.pop_back();
            visit(done);
        }
    }
}

// Calls f(tensor, is_output, position) for each tensor whose in-place change would corrupt this
// op's backward, in a fixed order (what the op's row says its backward reads; a Python op may keep
// any input or output in its context, so all of them are watched).
template <class F>
void for_each_saved(const OpNode& op, F&& f) {
    const Saves what = op.external ? saves_both : op_table()[static_cast<size_t>(op.op)].saves;
    if (what & saves_in)
        for (size_t i = 0; i < op.call.in.size(); ++i) f(op.call.in[i], false, i);
    if (what & saves_out)
        for (size_t i = 0; i < op.call.out.size(); ++i) f(op.call.out[i], true, i);
}

void remember_versions(OpNode& op) {
    for_each_saved(op, [&](const Tensor& t, bool, size_t) {
        if (op.versions.empty()) op.versions.reserve(op.call.in.size() + op.call.out.size());  // one allocation
        op.versions.push_back(t.version());
    });
}

void check_versions(const OpNode& op) {
    size_t k = 0;
    for_each_saved(op, [&](const Tensor& t, bool output, size_t i) {
        if (k < op.versions.size() && t.version() != op.versions[k])
            throw GraphError("backward of " + op.name() + ": its " + (output ? "output " : "input ") +
                             std::to_string(i) + " of shape " + shape_str(t.shape()) +
                             " was modified in place after the forward (version " + std::to_string(op.versions[k]) +
                             " then, " + std::to_string(t.version()) +
                             " now), so its gradient would be wrong; change values after backward, or use a copy");
        ++k;
    });
}

std::string grad_error(const OpNode& op, size_t i, const Tensor& g, const Tensor& in) {
    return "backward of " + op.name() + " returned a gradient of shape " + shape_str(g.shape()) + " for input " +
           std::to_string(i) + " of shape " + shape_str(in.shape());
}
}  // namespace

Node::~Node() {
    if (!source || source.use_count() != 1) return;  // no op, or one held elsewhere: nothing to tear down
    std::vector<OpNodePtr> stack;  // allocated only when an input's op dies too
    OpNodePtr op = std::move(source);
    for (;;) {
        if (op.use_count() == 1) {  // else still held elsewhere: dropping our reference frees nothing
            // Take the sources of inputs that die with this op, so their destructors have nothing to recurse into.
            for (auto& in : op->inputs) {
                long held_here = 0;
                for (auto& other : op->inputs) held_here += other == in;
                if (in->source && in.use_count() == held_here) stack.push_back(std::move(in->source));
            }
        }
        op.reset();
        if (stack.empty()) return;
        op = std::move(stack.back());
        stack.pop_back();
    }
}

std::string OpNode::name() const { return external ? external->name() : op_table()[op].name; }

bool anomaly_enabled() { return anomaly_mode; }
void set_anomaly_enabled(bool enabled) { anomaly_mode = enabled; }

static bool all_finite(const Tensor& t) {
    return float_dispatch(t.dtype(), "detect_anomaly", [&](auto tag) {
        using T = decltype(tag);
        return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(t.data<T>(), t.numel()).allFinite();
    });
}

bool grad_enabled() { return grad_mode; }
void set_grad_enabled(bool enabled) { grad_mode = enabled; }

void run_forward(int op, Call& c) {
    const OpDef& def = op_table().at(static_cast<size_t>(op));
    c.def = &def;
    const char* name = def.name;
    Tensors& inputs = c.in;
    if (def.arity >= 0 ? static_cast<int>(inputs.size()) != def.arity : inputs.empty())
        throw std::invalid_argument(std::string(name) + ": expected " +
                                    (def.arity >= 0 ? std::to_string(def.arity) : std::string("at least 1")) +
                                    " input(s), got " + std::to_string(inputs.size()));
    if (c.attrs.values.size() != def.attrs.size())
        throw std::logic_error(std::string(name) + ": called with " + std::to_string(c.attrs.values.size()) +
                               " attribute value(s) for the " + std::to_string(def.attrs.size()) + " of its row");
    DType dt = inputs[0].dtype();
    for (const auto& t : inputs) {
        if (!is_float(t.dtype()))
            throw DTypeError(std::string(name) + ": unsupported dtype " + dtype_name(t.dtype()) +
                             " (expected float32 or float64)");
        dt = promote(dt, t.dtype());
    }
    for (auto& t : inputs)
        if (t.dtype() != dt) t = t.to(dt);
    Shapes shapes = def.shape(c);
    c.out.clear();
    c.out.reserve(shapes.size());
    if (!def.forward) {
        c.out.push_back(c.in[0].view(shapes[0]));
    } else {
        for (const auto& s : shapes) c.out.push_back(Tensor::empty(s, dt));
        def.forward(c);
    }
}

Tensors run_backward(int op, const Call& call, const Tensors& grads) {
    const OpDef& def = op_table().at(static_cast<size_t>(op));
    if (!def.backward) throw std::invalid_argument(std::string(def.name) + " has no gradient");
    if (grads.size() != call.out.size())
        throw std::invalid_argument(std::string(def.name) + ": backward expected " + std::to_string(call.out.size()) +
                                    " gradient(s), got " + std::to_string(grads.size()));
    Tensors g;
    for (size_t k = 0; k < grads.size(); ++k) {
        if (grads[k].shape() != call.out[k].shape())
            throw std::invalid_argument(std::string(def.name) + ": gradient of shape " + shape_str(grads[k].shape()) +
                                        " does not match output of shape " + shape_str(call.out[k].shape()));
        g.push_back(grads[k].to(call.out[k].dtype()));
    }
    return def.backward(call, g, std::vector<bool>(call.in.size(), true));
}

static bool any_torch(const Nodes& inputs) {
    for (const auto& n : inputs)
        if (n->torch) return true;
    return false;
}

static Nodes connect(const OpNodePtr& op, const Tensors& outputs, bool record, bool torch) {
    Nodes nodes;
    nodes.reserve(outputs.size());
    if (record) op->outputs.reserve(outputs.size());
    for (const auto& t : outputs) {
        auto n = std::make_shared<Node>(t, record);
        n->torch = torch;
        if (record) {
            op->outputs.push_back(n);
            n->source = op;
        }
        nodes.push_back(std::move(n));
    }
    return nodes;
}

static bool should_record(const Nodes& inputs) {
    if (!grad_mode) return false;
    for (const auto& n : inputs)
        if (n->requires_grad) return true;
    return false;
}

Nodes apply(int op, Nodes inputs, Attrs attrs) {
    const bool rec = op_table()[static_cast<size_t>(op)].backward && should_record(inputs);
    Call local;
    auto node = rec ? std::make_shared<OpNode>() : nullptr;
    Call& call = rec ? node->call : local;
    call.in.reserve(inputs.size());
    for (const auto& n : inputs) call.in.push_back(n->value);
    call.attrs = std::move(attrs);
    run_forward(op, call);
    const bool torch = any_torch(inputs);
    if (rec) {
        node->op = op;
        node->inputs = std::move(inputs);  // the op node keeps the caller's vector
        remember_versions(*node);
    }
    Nodes outputs = connect(node, call.out, rec, torch);
    if (jit::Recorder* r = jit::recording()) r->applied(op, rec ? node->inputs : inputs, call.attrs, outputs);
    return outputs;
}

Nodes record(std::unique_ptr<ExternalOp> op, const Nodes& inputs, Tensors outputs) {
    if (jit::recording())
        jit::refuse("calls the Python Op " + op->name(), "write it with tapegrad's ops, or call this step without vg.jit");
    if (!should_record(inputs)) return connect(nullptr, outputs, false, any_torch(inputs));
    auto node = std::make_shared<OpNode>();
    node->external = std::move(op);
    node->inputs = inputs;
    for (const auto& n : inputs) node->call.in.push_back(n->value);  // the tensors the forward saw
    node->call.out = std::move(outputs);
    remember_versions(*node);
    return connect(node, node->call.out, true, any_torch(inputs));
}

namespace {

// Gradients of the nodes made by ops, kept for the length of one backward call (undefined once
// the op that made the node has taken it).
using Pending = AddressMap<Tensor>;

// acc += g, where acc may be undefined (then it becomes g) or share its buffer with another
// gradient (then it is copied first: a kernel may return one buffer for two inputs).
void add_into(Tensor& acc, Tensor g) {
    if (!acc.defined()) {
        acc = std::move(g);
    } else {
        if (acc.buffer().use_count() > 1) acc = acc.clone();
        acc.add_(g);
    }
}

// Adds g to a node's .grad. Graphs on several threads may share a leaf (a weight), so this is
// done under a lock; an existing .grad is added to in place (views of it in Python see it).
void add_to_grad(Node& n, const Tensor& g) {
    static std::mutex locks[64];
    std::lock_guard<std::mutex> hold(locks[(reinterpret_cast<uintptr_t>(&n) >> 6) % 64]);
    if (n.grad.defined() && n.grad.shape() == n.value.shape() && n.grad.dtype() == n.value.dtype())
        n.grad.add_(g);
    else  // adopt the buffer when nothing else holds it (another input, an output's grad, Python)
        n.grad = g.buffer().use_count() == 1 ? g : g.clone();
}

// The gradients of the op's outputs, taken from `pending`, with `outs` holding the outputs still
// alive: zeros for an output no gradient reached. False when none did (nothing to propagate).
bool output_grads(const OpNode& op, Pending& pending, Nodes& outs, Tensors& grads) {
    bool reached = false;
    for (size_t k = 0; k < op.outputs.size(); ++k) {
        outs.push_back(op.outputs[k].lock());
        Tensor* pg = outs.back() ? pending.find(outs.back().get()) : nullptr;
        if (pg && pg->defined()) {
            Tensor g = std::move(*pg);
            if (g.shape() != op.call.out[k].shape())
                throw GraphError("backward of " + op.name() + ": the gradient of its output " + std::to_string(k) +
                                 " has shape " + shape_str(g.shape()) + ", the output " +
                                 shape_str(op.call.out[k].shape()));
            if (g.dtype() != op.call.out[k].dtype()) g = g.to(op.call.out[k].dtype());
            grads.push_back(std::move(g));
            reached = true;
        } else {
            grads.push_back(Tensor::zeros(op.call.out[k].shape(), op.call.out[k].dtype()));
        }
    }
    return reached;
}

// The op's local backward, a kernel of the table or a Python callback: one gradient per input
// (undefined where the input needs none).
Tensors input_grads(OpNode& op, Tensors& grads, const std::vector<bool>& need) {
    Tensors gin;
    if (op.external) {
        gin = op.external->backward(grads);
    } else {
        for (auto& g : grads)
            if (g.dtype() != op.call.in[0].dtype()) g = g.to(op.call.in[0].dtype());
        gin = op_table()[static_cast<size_t>(op.op)].backward(op.call, grads, need);
    }
    if (gin.size() != op.inputs.size())
        throw std::invalid_argument("backward of " + op.name() + " returned " + std::to_string(gin.size()) +
                                    " gradient(s) for " + std::to_string(op.inputs.size()) + " input(s)");
    return gin;
}

// Hands the gradient g that op's backward returned for its input i on: into the leaf's .grad,
// or to the gradients pending for the op that made the input.
void deliver(const OpNode& op, size_t i, Tensor g, Pending& pending) {
    Node& in = *op.inputs[i];
    if (g.shape() != in.value.shape()) throw std::invalid_argument(grad_error(op, i, g, in.value));
    if (g.dtype() != in.value.dtype()) g = g.to(in.value.dtype());
    if (anomaly_mode && !all_finite(g))
        throw GraphError("detect_anomaly: backward of " + op.name() + " produced nan or inf in the gradient of its input " +
                         std::to_string(i) + " (shape " + shape_str(g.shape()) + ")" +
                         (op.trace.empty() ? std::string() : "; the op was created at:\n" + op.trace));
    if (in.source) add_into(pending[&in], std::move(g));
    else add_to_grad(in, g);
}

// Drops what the op kept for its backward; a later backward through it is then an error.
void release_saved(OpNode& op) {
    op.call.in.clear();
    op.call.out.clear();
    op.call.aux = Tensor();
    op.call.attrs.index = Tensor();
    if (op.external) op.external->release();
    op.freed = true;
}

// Holds every op of one backward call as a reader for the length of the call; when the call
// completes without retain_graph, the saved values of each op are released once its last reader
// is done (at once, unless another thread is running a backward through it).
class Readers {
  public:
    explicit Readers(const std::vector<OpNodePtr>& ops) : ops_(ops) {
        for (const auto& op : ops_) {
            std::unique_lock<std::mutex> hold(op->use);
            if (op->freed) {
                hold.unlock();
                leave();
                throw GraphError("backward through " + op->name() +
                                 " a second time: its saved values were freed by the first backward; call "
                                 "backward(retain_graph=True) the first time to keep them");
            }
            ++op->readers;
            ++entered_;
        }
    }
    Readers(const Readers&) = delete;
    Readers& operator=(const Readers&) = delete;
    ~Readers() { leave(); }
    void release_when_done() { release_ = true; }

  private:
    void leave() {
        for (size_t i = 0; i < entered_; ++i) {
            OpNode& op = *ops_[i];
            std::lock_guard<std::mutex> hold(op.use);
            op.release_requested |= release_;
            if (--op.readers == 0 && op.release_requested && !op.freed) release_saved(op);
        }
        entered_ = 0;
    }

    const std::vector<OpNodePtr>& ops_;
    size_t entered_ = 0;
    bool release_ = false;
};

}  // namespace

namespace {

// How many references the ops of one graph hold to each node: a node with more references than
// that (plus the caller's) is held from outside the graph, by Python code say.
using GraphRefs = AddressMap<long>;

GraphRefs graph_refs(const std::vector<OpNodePtr>& order) {
    GraphRefs refs;
    refs.reserve(2 * order.size());
    for (const auto& op : order)
        for (const auto& in : op->inputs) ++refs[in.get()];
    return refs;
}

bool held_outside(const NodePtr& n, const GraphRefs& refs, long own) {
    const long* in_graph = refs.find(n.get());
    return n.use_count() - own - (in_graph ? *in_graph : 0) > 0;
}

std::string shapes_str(const Tensors& ts) {
    std::string s;
    for (size_t i = 0; i < ts.size(); ++i)
        s += (i ? ", " : "") + (ts[i].defined() ? shape_str(ts[i].shape()) : std::string("-"));
    return s;
}

thread_local std::function<void(const std::string&)> trace_sink;

}  // namespace

void set_trace(std::function<void(const std::string&)> sink) { trace_sink = std::move(sink); }

void backward(const NodePtr& root, bool retain_graph, Tensor seed) {
    if (jit::Recorder* r = jit::recording()) r->backward(root, retain_graph, seed);
    if (!seed.defined()) {
        if (root->value.numel() != 1)
            throw std::invalid_argument("backward() can only start from a scalar node; this node has shape " +
                                        shape_str(root->value.shape()) + " (pass the gradient of the root)");
        seed = Tensor::full(root->value.shape(), root->value.dtype(), 1.0);
    } else if (seed.shape() != root->value.shape()) {
        throw std::invalid_argument("backward(): gradient of shape " + shape_str(seed.shape()) +
                                    " does not match the root's shape " + shape_str(root->value.shape()));
    } else {
        // a copy: the root's gradient (and a leaf's .grad) must not share the caller's buffer
        seed = seed.dtype() == root->value.dtype() ? seed.clone() : seed.to(root->value.dtype());
    }
    if (!root->source) {  // a leaf: its gradient is 1, added to what it has
        if (root->requires_grad) add_to_grad(*root, seed);
        return;
    }
    std::vector<OpNodePtr> order;
    order.reserve(kTypicalOps);
    post_order(root, [&](const OpNodePtr& op) { order.push_back(op); });
    Readers readers(order);
    for (const auto& op : order) check_versions(*op);  // check everything before changing anything
    const GraphRefs refs = graph_refs(order);

    Pending pending;
    pending.reserve(order.size() + 1);
    pending[root.get()] = seed;
    size_t step = 0;
    Nodes outs;  // these three are emptied op after op and keep their memory
    Tensors grads;
    std::vector<bool> need;
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        OpNode& op = **it;
        outs.clear();  // (before anything counts references: the last op's outputs are let go)
        grads.clear();
        const bool reached = output_grads(op, pending, outs, grads);
        // As in vugrad, a node that Python still holds keeps its gradient (as does one marked
        // retain_grad); the gradients of nodes nothing else holds are dropped once used.
        for (size_t k = 0; k < outs.size(); ++k)
            if (reached && outs[k] && (outs[k]->retain || (!outs[k]->torch && held_outside(outs[k], refs, 1))))
                add_to_grad(*outs[k], grads[k]);
        if (reached) {
            // A leaf that only this graph holds is gone with it: nobody can read its gradient (anomaly
            // mode, for debugging, still computes and checks it).
            need.clear();
            for (const auto& in : op.inputs)
                need.push_back(in->requires_grad && (in->source || anomaly_mode || held_outside(in, refs, 0)));
            Tensors received = trace_sink ? grads : Tensors();
            Tensors gin = input_grads(op, grads, need);
            if (trace_sink)
                trace_sink(std::to_string(++step) + ". " + op.name() + ": received (" + shapes_str(received) +
                           "), returned (" + shapes_str(gin) + ")");
            grads.clear();
            for (size_t i = 0; i < gin.size(); ++i) {
                if (!gin[i].defined()) continue;
                if (gin[i].shape() != op.inputs[i]->value.shape())  // a wrong gradient is an error even if unused
                    throw std::invalid_argument(grad_error(op, i, gin[i], op.inputs[i]->value));
                if (need[i]) deliver(op, i, std::move(gin[i]), pending);
            }
        }
        op.differentiated = true;
    }
    if (!retain_graph) readers.release_when_done();
}

void zero_grad(const NodePtr& root) {
    if (jit::Recorder* r = jit::recording()) r->on_node(jit::Action::zero_grad, root);
    auto zero = [](Node& n) {
        if (n.grad.defined()) n.grad.fill(0.0);
    };
    zero(*root);
    post_order(root, [&](const OpNodePtr& op) {
        for (auto& in : op->inputs) zero(*in);
    });
}

void clear(const NodePtr& root) {
    std::vector<OpNodePtr> ops;
    post_order(root, [&](const OpNodePtr& op) { ops.push_back(op); });
    for (auto& op : ops) {
        for (auto& in : op->inputs) in->source.reset();
        op->inputs.clear();
        op->outputs.clear();
    }
    root->source.reset();
}

}  // namespace tg
