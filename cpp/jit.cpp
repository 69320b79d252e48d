#include "jit.h"

#include <cstring>
#include <limits>
#include <unordered_map>

namespace tg::jit {

namespace {
thread_local std::unique_ptr<Recorder> active;

bool same_bits(const Tensor& a, const Tensor& b) {
    if (a.defined() != b.defined()) return false;
    if (!a.defined()) return true;
    return a.dtype() == b.dtype() && a.shape() == b.shape() &&
           (a.raw() == b.raw() || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

bool same_attrs(const Attrs& a, const Attrs& b) {
    if (a.values.size() != b.values.size() || !same_bits(a.index, b.index)) return false;
    for (size_t i = 0; i < a.values.size(); ++i) {
        const AttrValue &x = a.values[i], &y = b.values[i];
        if (x.ints != y.ints || x.none != y.none || std::memcmp(&x.real, &y.real, sizeof x.real) != 0) return false;
    }
    return true;
}

bool same_config(const SgdConfig& a, const SgdConfig& b) {
    return a.lr == b.lr && a.momentum == b.momentum && a.dampening == b.dampening &&
           a.weight_decay == b.weight_decay && a.nesterov == b.nesterov;
}
bool same_config(const AdamConfig& a, const AdamConfig& b) {
    return a.lr == b.lr && a.beta1 == b.beta1 && a.beta2 == b.beta2 && a.eps == b.eps &&
           a.weight_decay == b.weight_decay && a.decoupled == b.decoupled;
}
bool same_config(const RmspropConfig& a, const RmspropConfig& b) {
    return a.lr == b.lr && a.alpha == b.alpha && a.eps == b.eps && a.weight_decay == b.weight_decay &&
           a.momentum == b.momentum;
}

const char* kind_name(Action::Kind k) {
    switch (k) {
        case Action::apply: return "op";
        case Action::backward: return "backward";
        case Action::zero_grad: return "zero_grad";
        case Action::clear_grad: return "grad = None";
        case Action::fill_grad: return "grad zeroed in place";
        case Action::retain: return "retain_grad";
        case Action::detach: return "detach";
        case Action::optimiser: return "optimiser step";
    }
    return "?";
}

std::string action_name(const Action& a) {
    if (a.kind == Action::apply) return op_table()[static_cast<size_t>(a.op)].name;
    if (a.kind == Action::optimiser)
        return a.optim->which == OptimCall::sgd ? "SGD step" : a.optim->which == OptimCall::adam ? "Adam step"
                                                                                               : "RMSprop step";
    return kind_name(a.kind);
}

std::string source_str(const Program& p, const Source& s) {
    switch (s.kind) {
        case Source::slot: return "%" + std::to_string(s.index);
        case Source::arg_node: return "argument node " + std::to_string(s.index);
        case Source::arg_leaf: return "leaf of argument " + std::to_string(p.conversions[p.leaves[s.index].conversion].arg);
        case Source::captured: {
            const Node& n = *p.captured[s.index];
            return std::string(n.source ? "node " : n.requires_grad ? "leaf " : "constant ") + shape_str(n.value.shape());
        }
    }
    return "?";
}
}  // namespace

Recorder* recording() { return active.get(); }

void start(std::unique_ptr<Recorder> r) {
    if (active) throw std::logic_error("vg.jit: a trace is already recording on this thread");
    active = std::move(r);
}

std::unique_ptr<Recorder> stop() { return std::move(active); }

void refuse(const std::string& what, const std::string& instead) {
    if (!active) return;
    std::string msg = "vg.jit: the step " + what + ", which a replay in C++ cannot repeat";
    if (!instead.empty()) msg += "; " + instead;
    if (active->refused.empty()) active->refused = msg;
    throw TraceError(msg);
}

Recorder::Recorder(std::vector<NodePtr> nodes, std::vector<Array> arrays)
    : nodes_(std::move(nodes)), arrays_(std::move(arrays)) {
    program_->arg_nodes = static_cast<int>(nodes_.size());
}

Source Recorder::source_of(const NodePtr& n) {
    if (auto it = slot_of_.find(n.get()); it != slot_of_.end()) return {Source::slot, it->second};
    for (size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i] == n) return {Source::arg_node, static_cast<int>(i)};
    for (size_t i = 0; i < leaf_nodes_.size(); ++i)
        if (leaf_nodes_[i] == n) return {Source::arg_leaf, static_cast<int>(i)};
    if (!n->source && n->value.defined())
        for (size_t k = 0; k < conversions_.size(); ++k)
            if (conversions_[k].buffer() == n->value.buffer() && conversions_[k].shape() == n->value.shape()) {
                program_->leaves.push_back({static_cast<int>(k), n->requires_grad, n->torch, n->name});
                leaf_nodes_.push_back(n);  // kept, so that no other node takes its address
                return {Source::arg_leaf, static_cast<int>(leaf_nodes_.size() - 1)};
            }
    auto& cap = program_->captured;
    auto [it, added] = captured_of_.emplace(n.get(), static_cast<int>(cap.size()));
    if (added) cap.push_back(n);
    return {Source::captured, it->second};
}

bool Recorder::is_argument(const NodePtr& n) const {
    for (const auto& a : nodes_)
        if (a == n) return true;
    for (const auto& t : conversions_)
        if (n->value.buffer() == t.buffer()) return true;
    return false;
}

void Recorder::produced(const Nodes& outputs, Action& a) {
    a.first_slot = static_cast<int>(made_.size());
    a.outputs = static_cast<int>(outputs.size());
    for (const auto& n : outputs) {
        slot_of_[n.get()] = static_cast<int>(made_.size());
        made_.push_back(n);
    }
}

void Recorder::applied(int op, const Nodes& inputs, const Attrs& attrs, const Nodes& outputs) {
    Action a;
    a.kind = Action::apply;
    a.op = op;
    for (const auto& n : inputs) a.in.push_back(source_of(n));
    a.attrs = attrs;
    if (attrs.index.defined())
        for (size_t k = 0; k < conversions_.size(); ++k)
            if (conversions_[k].buffer() == attrs.index.buffer()) {
                a.index_conversion = static_cast<int>(k);
                a.attrs.index = Tensor();
                break;
            }
    produced(outputs, a);
    program_->actions.push_back(std::move(a));
}

void Recorder::backward(const NodePtr& root, bool retain_graph, const Tensor& seed) {
    Action a;
    a.kind = Action::backward;
    a.in.push_back(source_of(root));
    a.retain_graph = retain_graph;
    if (seed.defined()) a.seed = seed.clone();
    program_->actions.push_back(std::move(a));
}

void Recorder::on_node(Action::Kind kind, const NodePtr& node) {
    Action a;
    a.kind = kind;
    a.in.push_back(source_of(node));
    program_->actions.push_back(std::move(a));
}

void Recorder::detached(const NodePtr& from, const NodePtr& to) {
    Action a;
    a.kind = Action::detach;
    a.in.push_back(source_of(from));
    produced({to}, a);
    program_->actions.push_back(std::move(a));
}

void Recorder::optimiser(std::shared_ptr<OptimCall> call) {
    call->first.assign(call->params.size(), false);  // the recorded call made the momentum buffers
    Action a;
    a.kind = Action::optimiser;
    a.optim = std::move(call);
    program_->actions.push_back(std::move(a));
}

bool Recorder::argument_view(const NodePtr& n, Array view) {
    for (size_t k = 0; k < nodes_.size(); ++k)
        if (nodes_[k] == n) {
            arrays_[k] = std::move(view);
            return true;
        }
    return false;
}

void Recorder::converted(const Array& x, Conversion::How how, bool share, const Tensor& t) {
    for (size_t k = 0; k < arrays_.size(); ++k) {
        const Array& a = arrays_[k];
        if (a.data && a.data == x.data && a.shape == x.shape && a.strides == x.strides && a.dtype == x.dtype) {
            program_->conversions.push_back({how, share, static_cast<int>(k)});
            conversions_.push_back(t);
            return;
        }
    }
}

std::shared_ptr<Program> Recorder::finish(const std::vector<NodePtr>& outputs) {
    Program& p = *program_;
    for (const auto& n : outputs) p.outputs.push_back(source_of(n));
    p.slots = static_cast<int>(made_.size());
    // Each slot is dropped after the last action that uses it (as Python drops a variable), so that
    // backward sees the nodes the step's own code would still hold; returned slots are kept.
    const int never = std::numeric_limits<int>::max();
    std::vector<int> last(made_.size(), -1);
    for (size_t i = 0; i < p.actions.size(); ++i) {
        const Action& a = p.actions[i];
        for (int s = a.first_slot; s >= 0 && s < a.first_slot + a.outputs; ++s) last[s] = static_cast<int>(i);
        for (const Source& s : a.in)
            if (s.kind == Source::slot) last[s.index] = static_cast<int>(i);
    }
    for (const Source& s : p.outputs)
        if (s.kind == Source::slot) last[s.index] = never;
    p.release.assign(p.actions.size(), {});
    for (size_t s = 0; s < last.size(); ++s)
        if (last[s] >= 0 && last[s] != never) p.release[last[s]].push_back(static_cast<int>(s));
    return program_;
}

namespace {
void run_optimiser(OptimCall& c) {
    switch (c.which) {
        case OptimCall::sgd: sgd_step(c.params, c.states, c.first, c.sgd_config); break;
        case OptimCall::adam:
            for (size_t i = 0; i < c.params.size(); ++i)
                if (c.params[i]->grad.defined()) ++c.steps[i];
            adam_step(c.params, c.states, c.steps, c.adam_config);
            break;
        case OptimCall::rmsprop: rmsprop_step(c.params, c.states, c.rmsprop_config); break;
    }
}
}  // namespace

std::vector<NodePtr> Program::run(const std::vector<NodePtr>& nodes, const std::vector<Tensor>& converted) {
    if (active) throw std::logic_error("vg.jit: a replay cannot run inside a trace");
    if (nodes.size() != static_cast<size_t>(arg_nodes) || converted.size() != conversions.size())
        throw std::invalid_argument("vg.jit: a replay got " + std::to_string(nodes.size()) + " node(s) and " +
                                    std::to_string(converted.size()) + " array(s) for the " +
                                    std::to_string(arg_nodes) + " and " + std::to_string(conversions.size()) +
                                    " it recorded");
    std::lock_guard<std::mutex> hold(running_);
    std::vector<NodePtr> slot(static_cast<size_t>(slots));
    std::vector<NodePtr> leaf(leaves.size());
    auto node = [&](const Source& s) -> const NodePtr& {
        switch (s.kind) {
            case Source::slot: return slot[s.index];
            case Source::arg_node: return nodes[s.index];
            case Source::arg_leaf: {
                NodePtr& n = leaf[s.index];
                if (!n) {
                    const ArgLeaf& l = leaves[s.index];
                    n = std::make_shared<Node>(converted[l.conversion], l.requires_grad);
                    n->torch = l.torch;
                    n->name = l.name;
                }
                return n;
            }
            case Source::captured: break;
        }
        return captured[s.index];
    };
    for (size_t i = 0; i < actions.size(); ++i) {
        const Action& a = actions[i];
        switch (a.kind) {
            case Action::apply: {
                Nodes ins;
                for (const Source& s : a.in) ins.push_back(node(s));
                Attrs attrs = a.attrs;
                if (a.index_conversion >= 0) attrs.index = converted[a.index_conversion];
                Nodes outs = tg::apply(a.op, std::move(ins), std::move(attrs));
                for (int k = 0; k < a.outputs; ++k) slot[a.first_slot + k] = std::move(outs[k]);
                break;
            }
            case Action::backward: tg::backward(node(a.in[0]), a.retain_graph, a.seed); break;
            case Action::zero_grad: tg::zero_grad(node(a.in[0])); break;
            case Action::clear_grad: node(a.in[0])->grad = Tensor(); break;
            case Action::fill_grad: {
                const NodePtr& n = node(a.in[0]);
                if (n->grad.defined()) n->grad.fill(0.0);
                break;
            }
            case Action::retain: node(a.in[0])->retain = true; break;
            case Action::detach: {
                const NodePtr& from = node(a.in[0]);
                auto d = std::make_shared<Node>(from->value, false);
                d->name = from->name;
                d->torch = from->torch;
                slot[a.first_slot] = std::move(d);
                break;
            }
            case Action::optimiser: run_optimiser(*a.optim); break;
        }
        for (int s : release[i]) slot[s].reset();
    }
    std::vector<NodePtr> out;
    for (const Source& s : outputs) out.push_back(node(s));
    return out;
}

std::string Program::difference(const Program& o) const {
    auto at = [](size_t i, const Action& a) {
        return "action " + std::to_string(i + 1) + " (" + action_name(a) + ")";
    };
    auto same_source = [&](const Source& x, const Source& y) {
        if (!(x == y)) return false;
        if (x.kind != Source::captured) return true;
        const Node &n = *captured[x.index], &m = *o.captured[y.index];
        return &n == &m || (!n.source && !m.source && n.requires_grad == m.requires_grad && n.torch == m.torch &&
                            same_bits(n.value, m.value));
    };
    const std::string changed =
        ": the step made it from something else than its arguments and parameters (numpy code on an input, a "
        "random draw, a value read back from a node), so a replay would repeat the first call's; pass it as an "
        "argument, or compute it with tapegrad's ops";
    if (actions.size() != o.actions.size())
        return "the two calls did " + std::to_string(actions.size()) + " and " + std::to_string(o.actions.size()) +
               " actions (the step's Python code took another path)";
    for (size_t i = 0; i < actions.size(); ++i) {
        const Action &a = actions[i], &b = o.actions[i];
        if (a.kind != b.kind || a.op != b.op || a.in.size() != b.in.size() || a.first_slot != b.first_slot ||
            a.outputs != b.outputs)
            return at(i, a) + " is " + action_name(b) + " in the other call (the step's Python code took another path)";
        for (size_t k = 0; k < a.in.size(); ++k)
            if (!same_source(a.in[k], b.in[k]))
                return at(i, a) + ": its input " + std::to_string(k) + " (" + source_str(*this, a.in[k]) + ")" +
                       (a.in[k].kind == Source::captured && b.in[k].kind == Source::captured
                            ? " holds other values in the other call" + changed
                            : " is " + source_str(o, b.in[k]) + " in the other call");
        if (a.index_conversion != b.index_conversion || !same_attrs(a.attrs, b.attrs))
            return at(i, a) + ": its attributes (constants, indices) differ between the two calls" + changed;
        if (a.retain_graph != b.retain_graph || !same_bits(a.seed, b.seed))
            return at(i, a) + ": its gradient or retain_graph differs between the two calls" + changed;
        if (a.kind == Action::optimiser) {
            const OptimCall &x = *a.optim, &y = *b.optim;
            bool same = x.which == y.which && x.params == y.params && x.states.size() == y.states.size() &&
                        same_config(x.sgd_config, y.sgd_config) && same_config(x.adam_config, y.adam_config) &&
                        same_config(x.rmsprop_config, y.rmsprop_config);
            for (size_t k = 0; same && k < x.states.size(); ++k) {
                same = x.states[k].size() == y.states[k].size();
                for (size_t j = 0; same && j < x.states[k].size(); ++j) same = x.states[k][j].raw() == y.states[k][j].raw();
            }
            if (!same)
                return at(i, a) + ": its parameters, state or hyper-parameters differ between the two calls";
        }
    }
    if (!(conversions == o.conversions) || outputs.size() != o.outputs.size())
        return "the step used its array arguments, or returned its results, differently in the two calls";
    for (size_t i = 0; i < leaves.size() && i < o.leaves.size(); ++i)
        if (leaves[i].requires_grad != o.leaves[i].requires_grad || leaves[i].torch != o.leaves[i].torch)
            return "a node the step made from an array argument differs between the two calls";
    for (size_t i = 0; i < outputs.size(); ++i)
        if (!same_source(outputs[i], o.outputs[i]))
            return "its returned value " + std::to_string(i) + " differs between the two calls" + changed;
    return "";
}

std::vector<OptimCall*> Program::optimiser_calls() const {
    std::vector<OptimCall*> calls;
    for (const Action& a : actions)
        if (a.kind == Action::optimiser) calls.push_back(a.optim.get());
    return calls;
}

std::vector<std::string> Program::describe() const {
    std::vector<std::string> lines;
    for (size_t i = 0; i < actions.size(); ++i) {
        const Action& a = actions[i];
        std::string line = std::to_string(i + 1) + ". " + action_name(a);
        std::string args;
        for (size_t k = 0; k < a.in.size(); ++k) args += (k ? ", " : "") + source_str(*this, a.in[k]);
        if (a.index_conversion >= 0) args += ", indices from argument " + std::to_string(conversions[a.index_conversion].arg);
        if (a.kind == Action::optimiser) args = std::to_string(a.optim->params.size()) + " parameter(s)";
        line += "(" + args + ")";
        for (int k = 0; k < a.outputs; ++k) line += (k ? ", %" : " -> %") + std::to_string(a.first_slot + k);
        lines.push_back(line);
    }
    std::string ret = "returns (";
    for (size_t i = 0; i < outputs.size(); ++i) ret += (i ? ", " : "") + source_str(*this, outputs[i]);
    lines.push_back(ret + ")");
    return lines;
}

}  // namespace tg::jit
