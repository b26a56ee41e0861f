#include "train/fine_tune.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>

#include "loader/augmentation.h"
#include "train/device_input.h"
#include "train/lars.h"
#include "train/patch_batch.h"

namespace cytonet::train {
namespace {

constexpr double kClassifierRateFactor = 10;

// Batch norms' running statistics recomputed as plain averages over `batches` in train mode
// (momentum none: a cumulative average), without gradients.
void RecomputeBatchNormStatistics(const std::vector<torch::nn::Module*>& roots,
                                  const std::function<void()>& forward_batches) {
  std::vector<std::function<void(bool)>> modes;  // true: cumulative, false: as before
  for (torch::nn::Module* root : roots) {
    for (const auto& module : root->modules()) {
      auto cumulative = [&modes](auto* bn) {
        if (!bn || !bn->options.track_running_stats()) return;
        const auto momentum = bn->options.momentum();
        modes.push_back([bn, momentum](bool on) {
          if (on) bn->reset_running_stats();
          bn->options.momentum(on ? std::nullopt : momentum);
        });
      };
      cumulative(module->as<torch::nn::BatchNorm1dImpl>());
      cumulative(module->as<torch::nn::BatchNorm2dImpl>());
    }
  }
  for (auto& mode : modes) mode(true);
  forward_batches();
  for (auto& mode : modes) mode(false);
}

// 0 … n − 1 in an order drawn from `seed`.
std::vector<size_t> ShuffledOrder(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::mt19937_64 random(seed);
  std::shuffle(order.begin(), order.end(), random);
  return order;
}

double SquaredNorm(const std::vector<torch::Tensor>& tensors) {
  double sum = 0;
  for (const auto& t : tensors) sum += t.to(torch::kDouble).pow(2).sum().item<double>();
  return sum;
}

}  // namespace

FineTunedClassifier::FineTunedClassifier(Network& network, int64_t classes, const PatchReader& reader, int level,
                                         int64_t size, const std::vector<FineTuneSample>& samples,
                                         const FineTuneOptions& options,
                                         const std::function<void(const std::string&)>& progress)
    : network_(network), reader_(reader), level_(level), size_(size), device_(options.device) {
  TORCH_CHECK(!samples.empty(), "fine-tuning needs training samples");
  TORCH_CHECK(options.epochs >= 1 && options.batch_size >= 2, "fine-tuning needs at least one epoch and batches of ",
              "two or more (batch norm), not ", options.epochs, " epochs of ", options.batch_size);
  norm_ = torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(network.feature_dim).affine(false));
  classifier_ = torch::nn::Linear(torch::nn::LinearOptions(network.feature_dim, classes).bias(false));
  {
    torch::NoGradGuard no_grad;
    classifier_->weight.zero_();  // a seed-free start
  }
  network.to(device_);
  norm_->to(device_);
  classifier_->to(device_);

  // The backbone (the projection head is not used) and the classifier, which learns
  // kClassifierRateFactor times faster: it starts from nothing, the backbone from weights
  // worth keeping.
  const ParameterGroups backbone = SplitForWeightDecay(*network.backbone);
  std::vector<torch::Tensor> start;
  for (const auto& p : network.backbone->parameters()) start.push_back(p.detach().cpu().clone());
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  auto sgd = [&](double decay) {
    return std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(0).momentum(0.9).nesterov(true).weight_decay(decay));
  };
  param_groups.emplace_back(backbone.decayed, sgd(options.weight_decay));
  param_groups.emplace_back(backbone.other, sgd(0));
  param_groups.emplace_back(std::vector<torch::Tensor>{classifier_->weight}, sgd(options.weight_decay));
  const double rate_factor[] = {1, 1, kClassifierRateFactor};
  torch::optim::SGD optimiser(param_groups, torch::optim::SGDOptions(0).momentum(0.9).nesterov(true));

  // Full batches only (batch norm on one sample is undefined); at least one per epoch.
  const int64_t per_epoch = std::max<int64_t>(1, int64_t(samples.size()) / options.batch_size);
  const int64_t batch = std::min<int64_t>(options.batch_size, int64_t(samples.size()));
  TORCH_CHECK(batch >= 2, "fine-tuning needs two or more training samples, not ", samples.size());
  const LearningRateSchedule schedule{options.base_lr, batch, std::max<int64_t>(1, per_epoch * options.epochs / 10),
                                      per_epoch * options.epochs};
  AugmentationOptions augmentation;
  augmentation.enabled = options.augment;
  network.backbone->train();
  norm_->train();
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    const std::vector<size_t> order = ShuffledOrder(samples.size(), options.seed * 1000003 + uint64_t(epoch));
    double loss_sum = 0;
    for (int64_t step = 0; step < per_epoch; ++step) {
      std::vector<int64_t> rows, targets;
      std::vector<AugmentationParams> warps;
      for (int64_t k = step * batch; k < (step + 1) * batch; ++k) {
        const FineTuneSample& s = samples[order[size_t(k)]];
        rows.push_back(s.row), targets.push_back(s.target);
        warps.push_back(DrawAugmentation(options.seed, uint32_t(epoch), uint32_t(k), augmentation));
      }
      auto pixels = ReadPatchBatch(reader, rows, level, size, warps);
      TORCH_CHECK(pixels.ok(), "fine-tuning: ", pixels.status().ToString());
      const double lr = schedule.At(record_.steps);
      for (size_t g = 0; g < optimiser.param_groups().size(); ++g) {
        static_cast<torch::optim::SGDOptions&>(optimiser.param_groups()[g].options()).lr(lr * rate_factor[g]);
      }
      optimiser.zero_grad();
      const torch::Tensor logits = Classify(*pixels);
      const torch::Tensor loss = torch::cross_entropy_loss(logits, torch::tensor(targets).to(device_));
      const double value = loss.item<double>();
      TORCH_CHECK(std::isfinite(value), "fine-tuning: the loss became ", value, " at epoch ", epoch + 1, ", step ",
                  step + 1, " (learning rate ", lr, ")");
      loss.backward();
      optimiser.step();
      loss_sum += value;
      ++record_.steps;
    }
    record_.epoch_loss.push_back(loss_sum / double(per_epoch));
    if (progress) {
      progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs) + ": mean loss " +
               std::to_string(record_.epoch_loss.back()));
    }
  }
  // The running statistics (momentum 0.1) of a few hundred steps still remember their start,
  // and a random network starts far from its features' scale: they are recomputed on the
  // plain crops the classifier will see, over up to 64 batches of the training samples.
  // Batches in a seeded random order, so each mixes the classes as in training.
  const std::vector<size_t> order = ShuffledOrder(samples.size(), options.seed * 1000003 + uint64_t(options.epochs));
  RecomputeBatchNormStatistics({network.backbone.get(), norm_.get()}, [&] {
    torch::NoGradGuard no_grad;
    for (int64_t step = 0; step < std::min<int64_t>(64, per_epoch); ++step) {
      std::vector<int64_t> rows;
      for (int64_t k = step * batch; k < (step + 1) * batch; ++k) rows.push_back(samples[order[size_t(k)]].row);
      auto pixels = ReadPatchBatch(reader, rows, level, size);
      TORCH_CHECK(pixels.ok(), "fine-tuning: ", pixels.status().ToString());
      norm_->forward(network.features(NormaliseGrey(pixels->to(device_))));
    }
  });
  network.backbone->eval();
  norm_->eval();
  std::vector<torch::Tensor> change;
  const auto now = network.backbone->parameters();
  for (size_t i = 0; i < now.size(); ++i) change.push_back(now[i].detach().to(torch::kCPU) - start[i]);
  record_.backbone_change = std::sqrt(SquaredNorm(change) / std::max(1e-300, SquaredNorm(start)));
}

torch::Tensor FineTunedClassifier::Classify(const torch::Tensor& pixels) {
  // Normalised features scaled to unit expected length: a step of the classifier then moves
  // the logits by about the learning rate whatever the feature width (unscaled, by D times
  // it, which throws a short training off course).
  const torch::Tensor features = norm_->forward(network_.features(NormaliseGrey(pixels.to(device_))));
  return classifier_->forward(features / std::sqrt(double(features.size(1))));
}

torch::Tensor FineTunedClassifier::Logits(const std::vector<int64_t>& rows) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t begin = 0; begin < rows.size(); begin += 64) {
    const std::vector<int64_t> batch(rows.begin() + long(begin),
                                     rows.begin() + long(std::min(rows.size(), begin + 64)));
    auto pixels = ReadPatchBatch(reader_, batch, level_, size_);
    TORCH_CHECK(pixels.ok(), "fine-tuned probe: ", pixels.status().ToString());
    out.push_back(Classify(*pixels).to(torch::kCPU));
  }
  if (out.empty()) return torch::zeros({0, classifier_->weight.size(0)}, torch::kDouble);
  return torch::cat(out, 0).to(torch::kDouble).contiguous();
}

}  // namespace cytonet::train
