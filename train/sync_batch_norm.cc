#include "train/sync_batch_norm.h"

namespace cytonet::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Every dimension but the channels'.
std::vector<int64_t> ReducedDims(const torch::Tensor& x) {
  std::vector<int64_t> dims = {0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// [C] → [1, C, 1, …] to broadcast against x.
torch::Tensor PerChannel(const torch::Tensor& values, const torch::Tensor& x) {
  std::vector<int64_t> shape(size_t(x.dim()), 1);
  shape[1] = values.size(0);
  return values.to(x.scalar_type()).view(shape);
}

// The group travels through the autograd context as an address, as in distributed.cc.
class SynchronisedBatchNormFunction : public torch::autograd::Function<SynchronisedBatchNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, const torch::Tensor& weight,
                               const torch::Tensor& bias, torch::Tensor running_mean, torch::Tensor running_var,
                               const std::shared_ptr<ProcessGroup>& group, double eps, double momentum) {
    // Half-precision activations (autocast) are normalised in fp32 and handed back in their type.
    const auto x = input.element_size() < 4 ? input.to(torch::kFloat) : input;
    ctx->saved_data["input_type"] = int64_t(input.scalar_type());
    const int64_t channels = x.size(1);
    const auto dims = ReducedDims(x);
    // This rank's exact mean and variance, then Chan et al.'s merge in fp64.
    const auto [local_var, local_mean] = torch::var_mean(x, dims, /*correction=*/0);
    const auto counted = torch::full({1}, double(x.numel() / channels), x.options().dtype(torch::kDouble));
    const auto all =
        group->AllGather(torch::cat({local_mean.to(torch::kDouble), local_var.to(torch::kDouble), counted}))
            .view({group->size(), 2 * channels + 1});
    const auto means = all.narrow(1, 0, channels), variances = all.narrow(1, channels, channels);
    const auto counts = all.narrow(1, 2 * channels, 1);
    const double n = counts.sum().item<double>();
    TORCH_CHECK(n > 1, "synchronised batch norm: needs more than one value per channel over all ranks, got ", n);
    const auto mean = (counts * means).sum(0) / n;
    const auto variance = (counts * (variances + (means - mean).pow(2))).sum(0) / n;
    const auto inverse_std = (variance + eps).rsqrt();
    if (running_mean.defined()) {
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum).add_((variance * (n / (n - 1))).to(running_var.scalar_type()), momentum);
    }
    const auto normalised = (x - PerChannel(mean, x)) * PerChannel(inverse_std, x);
    ctx->save_for_backward({normalised, weight, inverse_std});
    ctx->saved_data["group"] = SaveGroup(group);
    ctx->saved_data["count"] = n;
    const auto y = weight.defined() ? normalised * PerChannel(weight, x) + PerChannel(bias, x) : normalised;
    return y.to(input.scalar_type());
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list gradients) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &normalised = saved[0], &weight = saved[1], &inverse_std = saved[2];
    ProcessGroup& group = SavedGroup(ctx->saved_data["group"]);
    const double n = ctx->saved_data["count"].toDouble();
    const torch::Tensor dy = gradients[0].to(normalised.scalar_type());
    const auto dims = ReducedDims(dy);
    const auto sum_dy = dy.sum(dims), sum_dy_normalised = (dy * normalised).sum(dims);
    std::vector<torch::Tensor> over_ranks = {torch::cat({sum_dy, sum_dy_normalised}).to(torch::kDouble)};
    group.AllReduceSum(over_ranks);
    const int64_t channels = sum_dy.size(0);
    const auto mean_dy = over_ranks[0].narrow(0, 0, channels) / n;
    const auto mean_dy_normalised = over_ranks[0].narrow(0, channels, channels) / n;
    const auto scale = weight.defined() ? inverse_std * weight.to(torch::kDouble) : inverse_std;
    const auto dx =
        (dy - PerChannel(mean_dy, dy) - normalised * PerChannel(mean_dy_normalised, dy)) * PerChannel(scale, dy);
    // The parameters' gradients are this rank's share, Σ over its rows: the gradient all-reduce
    // averages them over ranks, which with the all-gather's summing backward is the one-process
    // gradient (each rank's upstream gradient is that of the sum of all ranks' losses).
    const auto input_type = at::ScalarType(ctx->saved_data["input_type"].toInt());
    torch::Tensor dweight, dbias;
    if (weight.defined()) dweight = sum_dy_normalised.to(weight.scalar_type()), dbias = sum_dy.to(weight.scalar_type());
    return {dx.to(input_type), dweight, dbias, {}, {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor BatchNormInTraining(const std::shared_ptr<ProcessGroup>& group, const torch::Tensor& x,
                                  const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor& running_mean,
                                  torch::Tensor& running_var, torch::Tensor& num_batches_tracked,
                                  const torch::nn::BatchNormOptions& options) {
  TORCH_CHECK(x.dim() >= 2, "batch norm: input must be [N, C, …], got ", x.sizes());
  TORCH_CHECK(options.momentum().has_value(),
              "batch norm: a cumulative moving average (momentum None) is not supported");
  torch::Tensor mean, var;
  if (options.track_running_stats() && !Recomputing()) {
    mean = running_mean, var = running_var;
    torch::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  if (group == nullptr) {
    return torch::batch_norm(x, weight, bias, mean, var, /*training=*/true, *options.momentum(), options.eps(),
                             at::globalContext().userEnabledCuDNN());
  }
  return SynchronisedBatchNormFunction::apply(x, weight, bias, mean, var, group, options.eps(), *options.momentum());
}

void AttachProcessGroup(torch::nn::Module& root, const std::shared_ptr<ProcessGroup>& group) {
  for (const auto& module : root.modules(/*include_self=*/true)) {
    if (auto* norm = dynamic_cast<SynchronisedNorm*>(module.get())) norm->set_process_group(group);
  }
}

}  // namespace cytonet::train
