#include "train/mixed_precision.h"

#include <ATen/autocast_mode.h>

#include <cmath>

namespace cytonet::train {

Precision ParsePrecision(const std::string& name) {
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp16") return Precision::kFp16;
  TORCH_CHECK(name == "fp32", "precision must be fp32, bf16 or fp16, got \"", name, "\"");
  return Precision::kFp32;
}

AutocastScope::AutocastScope(Precision precision, const torch::Device& device) {
  if (precision == Precision::kFp32) return;
  active_ = true;
  device_type_ = device.type();
  was_enabled_ = at::autocast::is_autocast_enabled(device_type_);
  previous_type_ = at::autocast::get_autocast_dtype(device_type_);
  at::autocast::set_autocast_dtype(device_type_, precision == Precision::kBf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::set_autocast_enabled(device_type_, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // Leaving the outermost scope frees the casts of the weights autocast cached.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_type_, was_enabled_);
  at::autocast::set_autocast_dtype(device_type_, previous_type_);
}

LossScaler::LossScaler(bool enabled, Options options)
    : enabled_(enabled), options_(options), scale_(enabled ? options.initial_scale : 1.0) {}

bool LossScaler::Unscale(const std::vector<torch::Tensor>& parameters) const {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  // One flag on the device for all gradients: one host sync per step, not one per tensor.
  torch::Tensor finite;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    const auto all_finite = torch::isfinite(p.grad()).all();
    finite = finite.defined() ? finite.logical_and(all_finite) : all_finite;
  }
  if (finite.defined() && !finite.item<bool>()) return false;
  for (const auto& p : parameters) {
    if (p.grad().defined()) p.mutable_grad().div_(scale_);
  }
  return true;
}

void LossScaler::Update(bool stepped) {
  if (!enabled_) return;
  if (!stepped) {
    scale_ *= options_.backoff_factor;
    good_steps_ = 0;
    ++skipped_steps_;
    return;
  }
  if (++good_steps_ >= options_.growth_interval) {
    scale_ *= options_.growth_factor;
    good_steps_ = 0;
  }
}

void LossScaler::Restore(double scale, int64_t good_steps, int64_t skipped_steps) {
  TORCH_CHECK(std::isfinite(scale) && scale > 0, "loss scale ", scale, " is not a positive number");
  scale_ = scale;
  good_steps_ = good_steps;
  skipped_steps_ = skipped_steps;
}

namespace {

thread_local int recomputing_depth = 0;

struct RecomputingScope {
  RecomputingScope() { ++recomputing_depth; }
  ~RecomputingScope() { --recomputing_depth; }
};

// The segment rides in the autograd context as a capsule (saved_data holds IValues).
struct SegmentHolder : torch::CustomClassHolder {
  std::function<torch::Tensor(const torch::Tensor&)> segment;
};

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input,
                               c10::intrusive_ptr<SegmentHolder> holder) {
    // Autocast as it is now, so that the recomputation computes in the same precision.
    const auto device_type = input.device().type();
    ctx->saved_data["segment"] = at::IValue::make_capsule(holder);
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(device_type);
    ctx->saved_data["autocast_type"] = int64_t(at::autocast::get_autocast_dtype(device_type));
    ctx->save_for_backward({input});
    return holder->segment(input);  // autograd Functions run their forward without gradients
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list gradients) {
    const auto holder = c10::static_intrusive_pointer_cast<SegmentHolder>(ctx->saved_data["segment"].toCapsule());
    const torch::Tensor saved = ctx->get_saved_variables()[0];
    const torch::Tensor input = saved.detach().requires_grad_(saved.requires_grad());
    torch::Tensor output;
    {
      torch::AutoGradMode with_gradients(true);
      RecomputingScope recomputing;
      const Precision precision = !ctx->saved_data["autocast"].toBool() ? Precision::kFp32
                                  : at::ScalarType(ctx->saved_data["autocast_type"].toInt()) == at::kBFloat16
                                      ? Precision::kBf16
                                      : Precision::kFp16;
      AutocastScope autocast(precision, input.device());
      output = holder->segment(input);
    }
    // Gradients flow into the segment's parameters (their hooks fire: the gradient
    // all-reduce sees them as without checkpointing) and into the input.
    torch::autograd::backward({output}, {gradients[0]});
    return {input.requires_grad() ? input.grad() : torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool Recomputing() { return recomputing_depth > 0; }

torch::Tensor Checkpointed(const std::function<torch::Tensor(const torch::Tensor&)>& segment,
                           const torch::Tensor& input) {
  if (!torch::GradMode::is_enabled()) return segment(input);
  auto holder = c10::make_intrusive<SegmentHolder>();
  holder->segment = segment;
  return CheckpointFunction::apply(input, holder);
}

}  // namespace cytonet::train
