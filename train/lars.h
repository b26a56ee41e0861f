// The paper's optimiser (§3.4): SGD with Nesterov momentum inside LARS with clipping, the
// convention of NVIDIA apex's LARC. Per parameter p with gradient g, before the SGD step:
//
//   a = η‖p‖ / (‖g‖ + λ‖p‖ + ε);   s = min(a / lr, 1) with clipping, a without;
//   g ← s·(g + λp)                  (only when ‖p‖ > 0 and ‖g‖ > 0; else g is left alone)
//
// then  buf ← μ·buf + g (buf ← g on the first step),  p ← p − lr·(g + μ·buf)  (Nesterov),
// exactly torch.optim.SGD(nesterov=True, weight_decay=0) after apex.parallel.LARC.
//
// Weight decay λ applies to the "decayed" parameters (conv and linear weights). The others
// (biases, batch-norm scales and shifts) are not decayed; whether they are adapted by LARS
// is a switch, since the paper does not say.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace cytonet::train {

struct LarsOptions {
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 1e-4;        // λ, on decayed parameters only
  double trust_coefficient = 0.02;   // η
  double epsilon = 1e-8;             // ε
  bool clip = true;                  // s = min(a / lr, 1) instead of a
  bool adapt_bias_and_norm = false;  // LARS (without decay) on the other parameters too
};

// Weights of convolutions and linear layers (decayed) apart from biases, normalisation
// parameters (1-D tensors) and a ViT's class token and position embeddings, in the
// module's parameter order.
struct ParameterGroups {
  std::vector<torch::Tensor> decayed;
  std::vector<torch::Tensor> other;
};
ParameterGroups SplitForWeightDecay(const torch::nn::Module& module);
// The same for several modules, their groups concatenated in order (backbone, then head).
ParameterGroups SplitForWeightDecay(const std::vector<const torch::nn::Module*>& modules);

class LarsSgd {
 public:
  LarsSgd(ParameterGroups parameters, LarsOptions options);

  // One step at this learning rate (the schedule's value for the step). Parameters without
  // a gradient are skipped and keep their momentum.
  void Step(double learning_rate);
  void ZeroGrad();

  // For checkpoints: the momentum buffers, decayed parameters first, in order; undefined
  // tensors for parameters that have not stepped yet.
  std::vector<torch::Tensor> MomentumBuffers() const;
  // The parameters in the order of MomentumBuffers.
  std::vector<torch::Tensor> Parameters() const;
  void LoadMomentumBuffers(const std::vector<torch::Tensor>& buffers);

 private:
  struct Parameter {
    torch::Tensor value;
    bool decayed;
    torch::Tensor momentum;
  };
  void Update(Parameter& parameter, double learning_rate);

  std::vector<Parameter> parameters_;
  LarsOptions options_;
};

// The learning rate of a step: base × batch / 256 (the paper's linear scaling), constant or
// with a linear warm-up followed by a cosine decay to 0 at `total_steps`.
struct LearningRateSchedule {
  double base = 0.01;
  int64_t batch_size = 256;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // 0: constant after the warm-up
  double At(int64_t step) const;
};

}  // namespace cytonet::train
