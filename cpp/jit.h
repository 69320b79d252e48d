// vg.jit's engine side. A Recorder watches what one call of a training step does to the tape (the
// ops it applies, its backward passes, optimiser steps and gradient resets) and leaves a Program,
// which replays the same actions in C++ on new inputs of the same shapes and dtypes: the same
// tg::apply and tg::backward as eager mode, so gradients, versions and errors are eager mode's,
// without Python between the ops.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "optim.h"
#include "tape.h"

namespace tg::jit {

// What a step did that a replay cannot repeat (a Python op, numpy code on a node's value, a
// random draw): the Python layer raises it as vg.TraceError (a ValueError).
struct TraceError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// Where a node an action used comes from.
struct Source {
    enum Kind : uint8_t {
        slot,      // made by an earlier action of the step
        arg_node,  // a TensorNode the step was given
        arg_leaf,  // a leaf the step made from an array it was given (vg.TensorNode(x) inside the step)
        captured,  // anything else: a parameter, or a constant the step made (x * 2's 2)
    } kind;
    int index;
    bool operator==(const Source& o) const { return kind == o.kind && index == o.index; }
};

// How the step turned one of its array arguments into a tensor; a replay does the same to the new array.
struct Conversion {
    enum How : uint8_t { value, index, torch_leaf } how;  // to_tensor, to_index, tapegrad.tensor
    bool share;                                          // to_tensor/tensor: used in place when it can be
    int arg;                                             // position of the array among the step's arguments
    bool operator==(const Conversion& o) const { return how == o.how && share == o.share && arg == o.arg; }
};

// A leaf made from an array argument: remade at each replay from that conversion, with these flags.
struct ArgLeaf {
    int conversion;
    bool requires_grad, torch;
    std::string name;
};

// One optimiser step as the bindings called it.
struct OptimCall {
    enum Which : uint8_t { sgd, adam, rmsprop } which;
    std::vector<NodePtr> params;
    std::vector<std::vector<Tensor>> states;
    std::vector<bool> first;      // SGD: all false once recorded (the recorded call made the buffers)
    std::vector<int64_t> steps;   // Adam: the counts of the last call; a replay advances those with a gradient
    SgdConfig sgd_config{};
    AdamConfig adam_config{};
    RmspropConfig rmsprop_config{};
};

struct Action {
    enum Kind : uint8_t { apply, backward, zero_grad, clear_grad, fill_grad, retain, detach, optimiser } kind;
    int op = -1;                // apply: the op's row
    std::vector<Source> in;     // apply: its inputs; the others: the node they act on
    Attrs attrs;                // apply
    int index_conversion = -1;  // apply: attrs.index comes from this conversion (else it is attrs.index)
    int first_slot = -1;        // apply, detach: the outputs go to slots first_slot, first_slot + 1, ...
    int outputs = 0;
    bool retain_graph = false;  // backward
    Tensor seed;                // backward: its gradient (undefined: 1)
    std::shared_ptr<OptimCall> optim;
};

// A recorded step, replayable; one per shape signature of the arguments. Programs are replayed under
// their own lock (an Adam step's counts move on), one thread at a time.
class Program {
  public:
    std::vector<Action> actions;
    std::vector<Conversion> conversions;
    std::vector<ArgLeaf> leaves;
    std::vector<NodePtr> captured;
    std::vector<Source> outputs;  // what the step returned
    int slots = 0;
    int arg_nodes = 0;                      // the number of TensorNode arguments a replay takes
    std::vector<std::vector<int>> release;  // after action i, the slots no later action uses

    // Runs the actions on new arguments: `nodes` the TensorNodes (in the order recorded), `converted`
    // the new arrays as each conversion made them. Returns the outputs.
    std::vector<NodePtr> run(const std::vector<NodePtr>& nodes, const std::vector<Tensor>& converted);
    // The first difference from another recording of the same step, or "" when the two do the same
    // actions with the same constants (optimiser state and counts may move on between them).
    std::string difference(const Program& other) const;
    // The recorded optimiser steps, in order.
    std::vector<OptimCall*> optimiser_calls() const;
    // One line per action, for users (StepFunction.describe()).
    std::vector<std::string> describe() const;

  private:
    std::mutex running_;
};

// The recorder of this thread's active trace (null when none): what the tape and the bindings call.
class Recorder {
  public:
    // The TensorNode arguments (null where the argument is not one) and the array arguments'
    // identities (their data, shapes and strides in bytes; null data where not an array).
    struct Array {
        const void* data = nullptr;
        std::vector<int64_t> shape, strides;
        std::string dtype;  // numpy's dtype string
    };
    Recorder(std::vector<NodePtr> nodes, std::vector<Array> arrays);

    void applied(int op, const Nodes& inputs, const Attrs& attrs, const Nodes& outputs);
    void backward(const NodePtr& root, bool retain_graph, const Tensor& seed);
    void on_node(Action::Kind kind, const NodePtr& node);  // zero_grad, clear_grad, fill_grad, retain
    void detached(const NodePtr& from, const NodePtr& to);
    void optimiser(std::shared_ptr<OptimCall> call);
    // An array became tensor t (to_tensor, to_index, tapegrad.tensor): if it is one of the step's
    // array arguments, t is remembered as coming from it.
    void converted(const Array& array, Conversion::How how, bool share, const Tensor& t);
    // The step read the value of TensorNode argument n as this array: it stands for the argument
    // from now on, as an array argument would. False if n is not a TensorNode argument.
    bool argument_view(const NodePtr& n, Array view);

    // Whether the node is one of the step's arguments, or a leaf made from one.
    bool is_argument(const NodePtr& n) const;
    // Ends the recording with the nodes the step returned.
    std::shared_ptr<Program> finish(const std::vector<NodePtr>& outputs);
    // Why the step cannot be replayed ("" if it can): the first refusal, which the step may have caught.
    std::string refused;

  private:
    Source source_of(const NodePtr& n);
    void produced(const Nodes& outputs, Action& a);

    std::vector<NodePtr> nodes_;
    std::vector<Array> arrays_;
    std::shared_ptr<Program> program_ = std::make_shared<Program>();
    // The nodes and tensors seen are kept until the recording ends, so that no address is reused.
    std::vector<NodePtr> made_;                      // made by actions, by slot
    std::unordered_map<const Node*, int> slot_of_;   // their slots
    std::unordered_map<const Node*, int> captured_of_;
    std::vector<Tensor> conversions_;                // converted from array arguments, by conversion
    std::vector<NodePtr> leaf_nodes_;                // leaves made from them, by ArgLeaf
};

// This thread's recorder, or null.
Recorder* recording();
// Starts or stops recording on this thread (one trace at a time: a nested start is a logic error).
void start(std::unique_ptr<Recorder> r);
std::unique_ptr<Recorder> stop();
// TraceError naming `what`, if this thread is recording: for what a replay could not repeat. The
// recording is then void (finish's caller raises it again, should the step have caught it).
void refuse(const std::string& what, const std::string& instead);

}  // namespace tg::jit
