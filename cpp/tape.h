// The tape: value nodes (vugrad's TensorNode), op nodes (OpNode), the backward pass and grad mode.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ops/registry.h"
#include "small_vector.h"
#include "tensor.h"

namespace tg {

struct OpNode;

// Misuse of the graph (a second backward through freed values, a saved value changed in place).
struct GraphError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Node {
    Tensor value;
    Tensor grad;  // leaves that require grad (and retained nodes) keep it after backward
    std::shared_ptr<OpNode> source;
    std::string name;
    bool requires_grad = true;
    bool retain = false;  // keep the gradient of this non-leaf after backward (retain_grad())
    // The node's dialect: false for vugrad's TensorNode (every node Python holds keeps a gradient,
    // read as an array), true for PyTorch's tensors (made by tapegrad.tensor and the other
    // factories, tapegrad.nn's parameters, and anything computed from one of them: only leaves and
    // retain_grad() nodes keep a gradient, read as a tensor, None until a backward reaches it).
    bool torch = false;

    Node(Tensor v, bool req) : value(std::move(v)), requires_grad(req) {}
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;
    ~Node();  // tears the graph below down iteratively: a 100k-op chain must not overflow the stack
};
using NodePtr = std::shared_ptr<Node>;
// An op's input or output nodes.
using Nodes = SmallVector<NodePtr, 3>;

// An op whose kernels live outside the engine (a Python Op); the tape calls it back.
struct ExternalOp {
    virtual ~ExternalOp() = default;
    virtual std::string name() const = 0;
    // One gradient per input (undefined: none) given one per output.
    virtual Tensors backward(const Tensors& grads) = 0;
    virtual void release() {}  // drop what the forward saved (after a backward without retain_graph)
};

struct OpNode {
    int op = -1;  // row of op_table(), or -1 for an external op
    Call call;    // what the forward saw and produced (native ops)
    std::unique_ptr<ExternalOp> external;
    Nodes inputs;
    SmallVector<std::weak_ptr<Node>, 1> outputs;  // weak: outputs own their source, not the reverse
    SmallVector<uint64_t, 3> versions;  // versions of the saved tensors when the forward ran
    std::string trace;               // where the op was created (kept in anomaly mode)
    std::atomic<bool> differentiated{false};  // a backward has run through this op

    // Backward calls may run through one graph on several threads at once: each holds the op as a
    // reader, and the saved values are released (when one asked for it) once no reader is left.
    std::mutex use;
    int readers = 0;
    bool release_requested = false;
    bool freed = false;  // saved values released by a backward without retain_graph

    std::string name() const;
};
using OpNodePtr = std::shared_ptr<OpNode>;
#if defined(__GLIBC__)
// One op node per recorded op: with make_shared's control block it must stay within the blocks
// glibc's per-thread cache serves (1032 bytes), or every op takes malloc's slower path. The inline
// sizes of Call's and OpNode's lists are chosen for this.
static_assert(sizeof(OpNode) + 16 <= 1032, "an OpNode outgrew glibc's per-thread malloc cache");
#endif

bool grad_enabled();
void set_grad_enabled(bool enabled);  // per thread
// Anomaly mode (per thread): backward checks every gradient an op returns and raises a GraphError
// naming the first op that produced nan or inf.
bool anomaly_enabled();
void set_anomaly_enabled(bool enabled);
// Trace mode (per thread): while a sink is set, backward passes it one line per op it runs, in
// order, with the shapes of the gradients the op received and returned. An empty sink turns it off.
void set_trace(std::function<void(const std::string&)> sink);

// Runs a native op on the call's inputs and attributes: checks arity and dtypes, promotes
// float32/float64 to the wider type, applies the shape rule and the forward kernel to fill call.out.
void run_forward(int op, Call& call);
// Runs a native op's backward for a Call from run_forward (all input gradients wanted).
Tensors run_backward(int op, const Call& call, const Tensors& grads);

// Applies a native op to nodes, recording an OpNode when grad mode is on and an input requires grad
// (the OpNode keeps `inputs`: a caller that is done with its vector moves it in).
Nodes apply(int op, Nodes inputs, Attrs attrs);
// Records an op computed outside the engine, whose outputs are `outputs`.
Nodes record(std::unique_ptr<ExternalOp> op, const Nodes& inputs, Tensors outputs);

// Propagates the gradient 1 of the root down the graph, visiting the op nodes once each in reverse
// topological order. Leaves that require grad, nodes marked retain, and nodes held from outside the
// graph (by Python) add their gradient to .grad (under a lock: graphs on several threads may share a
// leaf); the gradients of other nodes live only during the call, and a leaf that only the graph
// holds gets none (nobody could read it). Several threads may run backward through one graph at once. Unless retain_graph,
// each op's saved values are released afterwards, and a later backward through it is a GraphError.
// `seed` is the gradient of the root (undefined: 1, for a one-element root only).
void backward(const NodePtr& root, bool retain_graph = false, Tensor seed = Tensor());
// Sets the gradient of the node and of every node below it to zero.
void zero_grad(const NodePtr& root);
// Disconnects the graph below the node, so what nothing else holds is freed.
void clear(const NodePtr& root);

}  // namespace tg
