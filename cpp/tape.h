// The tape: value nodes (vugrad's TensorNode), op nodes (OpNode), the backward pass and grad mode.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ops/registry.h"
#include "tensor.h"

namespace tg {

struct OpNode;

struct Node {
    Tensor value;
    Tensor grad;  // undefined until a backward pass reaches the node (or Python reads it)
    std::shared_ptr<OpNode> source;
    std::string name;
    bool requires_grad = true;

    Node(Tensor v, bool req) : value(std::move(v)), requires_grad(req) {}
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;
    ~Node();  // tears the graph below down iteratively: a 100k-op chain must not overflow the stack
};
using NodePtr = std::shared_ptr<Node>;

// An op whose kernels live outside the engine (a Python Op); the tape calls it back.
struct ExternalOp {
    virtual ~ExternalOp() = default;
    virtual std::string name() const = 0;
    // One gradient per input (undefined: none) given one per output.
    virtual std::vector<Tensor> backward(const std::vector<Tensor>& grads) = 0;
};

struct OpNode {
    int op = -1;  // row of op_table(), or -1 for an external op
    Call call;    // what the forward saw and produced (native ops)
    std::unique_ptr<ExternalOp> external;
    std::vector<NodePtr> inputs;
    std::vector<std::weak_ptr<Node>> outputs;  // weak: outputs own their source, not the reverse
    std::vector<Shape> out_shapes;
    std::vector<DType> out_dtypes;
    uint64_t mark = 0;  // epoch of the last traversal that visited this node

    std::string name() const;
};
using OpNodePtr = std::shared_ptr<OpNode>;

bool grad_enabled();
void set_grad_enabled(bool enabled);  // per thread

// Runs a native op on plain tensors: checks arity and dtypes, promotes float32/float64 to the wider
// type, applies the shape rule and the forward kernel.
Call run_forward(int op, std::vector<Tensor> inputs, Attrs attrs);
// Runs a native op's backward for a Call from run_forward (all input gradients wanted).
std::vector<Tensor> run_backward(int op, const Call& call, const std::vector<Tensor>& grads);

// Applies a native op to nodes, recording an OpNode when grad mode is on and an input requires grad.
std::vector<NodePtr> apply(int op, const std::vector<NodePtr>& inputs, Attrs attrs);
// Records an op computed outside the engine, whose outputs are `outputs`.
std::vector<NodePtr> record(std::unique_ptr<ExternalOp> op, const std::vector<NodePtr>& inputs,
                            std::vector<Tensor> outputs);

// Sets the root's gradient to 1 and accumulates gradients into every node below it, visiting the
// op nodes once each in reverse topological order.
void backward(const NodePtr& root);
// Sets the gradient of the node and of every node below it to zero.
void zero_grad(const NodePtr& root);
// Disconnects the graph below the node, so what nothing else holds is freed.
void clear(const NodePtr& root);

}  // namespace tg
