#include "train/lars.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace cytonet::train {

ParameterGroups SplitForWeightDecay(const torch::nn::Module& module) {
  ParameterGroups groups;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    // The ViT's class token and position embeddings are not decayed either (as in ViT).
    const std::string& name = item.key();
    const bool embedding = name.ends_with("class_token") || name.ends_with("position_embedding");
    (item.value().dim() > 1 && !embedding ? groups.decayed : groups.other).push_back(item.value());
  }
  return groups;
}

LarsSgd::LarsSgd(ParameterGroups parameters, LarsOptions options) : options_(options) {
  TORCH_CHECK(
      options.momentum >= 0 && options.weight_decay >= 0 && options.trust_coefficient > 0 && options.epsilon >= 0,
      "LARS: momentum, weight decay and epsilon must be ≥ 0 and the trust coefficient > 0");
  for (auto& p : parameters.decayed) parameters_.push_back({p, true, {}});
  for (auto& p : parameters.other) parameters_.push_back({p, false, {}});
}

void LarsSgd::Update(Parameter& parameter, double learning_rate) {
  torch::Tensor& p = parameter.value;
  const torch::Tensor& grad = p.grad();
  const double decay = parameter.decayed ? options_.weight_decay : 0.0;
  torch::Tensor step = grad;
  if (parameter.decayed || options_.adapt_bias_and_norm) {
    // As tensors, so a step costs no host sync per parameter on a GPU. Norms in fp32 at least.
    const auto norm_type = p.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    const auto p_norm = torch::linalg_vector_norm(p, 2, c10::nullopt, false, norm_type);
    const auto g_norm = torch::linalg_vector_norm(grad, 2, c10::nullopt, false, norm_type);
    const auto adapted = (p_norm > 0).logical_and(g_norm > 0);
    auto trust = options_.trust_coefficient * p_norm / (g_norm + decay * p_norm + options_.epsilon);
    if (options_.clip) trust = (trust / learning_rate).clamp_max(1.0);
    const auto scale = torch::where(adapted, trust, torch::ones_like(trust));
    // Decay only where adapted, as LARC adds it inside the same branch.
    step = decay > 0 ? grad.add(p * (adapted.to(norm_type) * decay)).mul(scale) : grad.mul(scale);
  }
  if (options_.momentum > 0) {
    if (!parameter.momentum.defined()) {
      parameter.momentum = step.clone();
    } else {
      parameter.momentum.mul_(options_.momentum).add_(step);
    }
    step = options_.nesterov ? step.add(parameter.momentum, options_.momentum) : parameter.momentum;
  }
  p.add_(step, -learning_rate);
}

void LarsSgd::Step(double learning_rate) {
  TORCH_CHECK(learning_rate >= 0 && std::isfinite(learning_rate), "LARS: learning rate must be ≥ 0, got ",
              learning_rate);
  torch::NoGradGuard no_grad;
  for (auto& parameter : parameters_) {
    if (parameter.value.grad().defined()) Update(parameter, learning_rate);
  }
}

void LarsSgd::ZeroGrad() {
  for (auto& parameter : parameters_) {
    if (parameter.value.grad().defined()) parameter.value.mutable_grad().reset();
  }
}

ParameterGroups SplitForWeightDecay(const std::vector<const torch::nn::Module*>& modules) {
  ParameterGroups groups;
  for (const torch::nn::Module* module : modules) {
    ParameterGroups of_module = SplitForWeightDecay(*module);
    groups.decayed.insert(groups.decayed.end(), of_module.decayed.begin(), of_module.decayed.end());
    groups.other.insert(groups.other.end(), of_module.other.begin(), of_module.other.end());
  }
  return groups;
}

std::vector<torch::Tensor> LarsSgd::Parameters() const {
  std::vector<torch::Tensor> values;
  for (const Parameter& p : parameters_) values.push_back(p.value);
  return values;
}

std::vector<torch::Tensor> LarsSgd::MomentumBuffers() const {
  std::vector<torch::Tensor> buffers;
  for (const auto& parameter : parameters_) buffers.push_back(parameter.momentum);
  return buffers;
}

void LarsSgd::LoadMomentumBuffers(const std::vector<torch::Tensor>& buffers) {
  TORCH_CHECK(buffers.size() == parameters_.size(), "LARS: ", buffers.size(), " momentum buffers for ",
              parameters_.size(), " parameters");
  for (size_t i = 0; i < buffers.size(); ++i) {
    const torch::Tensor& buffer = buffers[i];
    TORCH_CHECK(!buffer.defined() || buffer.sizes() == parameters_[i].value.sizes(), "LARS: momentum buffer ", i,
                " has shape ", buffer.sizes(), ", its parameter ", parameters_[i].value.sizes());
    // In the parameter's memory layout (channels-last weights), as a run that never stopped has it.
    parameters_[i].momentum =
        buffer.defined() ? torch::empty_like(parameters_[i].value).copy_(buffer) : torch::Tensor();
  }
}

double LearningRateSchedule::At(int64_t step) const {
  const double peak = base * double(batch_size) / 256.0;
  if (step < warmup_steps) return peak * double(step + 1) / double(warmup_steps);
  if (total_steps <= 0) return peak;
  const double progress =
      std::clamp(double(step - warmup_steps) / double(std::max<int64_t>(1, total_steps - warmup_steps)), 0.0, 1.0);
  return peak * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace cytonet::train
