#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <signal.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>

#include "dataset/dataset.h"
#include "dataset/lock.h"
#include "loader/loader.h"
#include "store/kvstore.h"
#include "train/checkpoint.h"
#include "train/device_input.h"
#include "train/lars.h"
#include "train/losses.h"
#include "train/resnet.h"
#include "train/vit.h"
#include "train/weights.h"

namespace cytonet::train {
namespace {

// Set by the handler, read by the training loop's thread: a lock-free atomic, which a
// signal handler may touch.
std::atomic<int> stop_requested{0};
static_assert(std::atomic<int>::is_always_lock_free);

void OnStopSignal(int) { stop_requested = 1; }

// SIGTERM and SIGUSR1 set the stop flag while a run is in progress; the previous handlers
// come back afterwards.
class StopSignals {
 public:
  StopSignals() {
    stop_requested = 0;
    struct sigaction action = {};
    action.sa_handler = OnStopSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, &previous_term_);
    sigaction(SIGUSR1, &action, &previous_usr1_);
  }
  ~StopSignals() {
    sigaction(SIGTERM, &previous_term_, nullptr);
    sigaction(SIGUSR1, &previous_usr1_, nullptr);
  }

 private:
  struct sigaction previous_term_ = {}, previous_usr1_ = {};
};

// Keys that may change between a run and its resumption: they change neither the
// parameters nor the batches. `steps` only while the schedule does not depend on it.
bool MayChangeOnResume(const std::string& key, const TrainConfig& config) {
  if (key == "steps") return config.schedule == "constant";
  return key == "checkpoint_every" || key == "keep_last" || key == "log_every" || key == "loader_threads" ||
         key == "run_dir" || key == "dataset";
}

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The network the loss sees, and the modules' parameters in the optimiser's order.
struct Network {
  std::shared_ptr<torch::nn::Module> backbone;  // a CytoNetResNet or a HybridBackbone
  std::function<torch::Tensor(const torch::Tensor&)> features;
  ProjectionHead head{nullptr};

  static Network Make(const TrainConfig& config) {
    Network net;
    int64_t feature_dim = 0;
    const bool small = config.model == "small" || config.model == "small_vit";
    const ResNetConfig resnet = small ? ResNetConfig::Small() : ResNetConfig::ResNet50();
    if (config.model == "r50_vit" || config.model == "small_vit") {
      HybridBackbone hybrid(resnet, small ? VitConfig::Small() : VitConfig::Base(), config.patch_size);
      net.features = [hybrid](const torch::Tensor& x) mutable { return hybrid->Features(x); };
      feature_dim = hybrid->feature_dim();
      net.backbone = hybrid.ptr();
    } else {
      CytoNetResNet plain(resnet);
      net.features = [plain](const torch::Tensor& x) mutable { return plain->Features(x); };
      feature_dim = resnet.feature_channels();
      net.backbone = plain.ptr();
    }
    net.head = ProjectionHead(feature_dim, config.projection_dim);
    return net;
  }
  NamedModules Named() const { return {{"backbone", backbone.get()}, {"head", head.get()}}; }
  ParameterGroups Groups() const {
    ParameterGroups groups = SplitForWeightDecay(*backbone), of_head = SplitForWeightDecay(*head);
    groups.decayed.insert(groups.decayed.end(), of_head.decayed.begin(), of_head.decayed.end());
    groups.other.insert(groups.other.end(), of_head.other.begin(), of_head.other.end());
    return groups;
  }
};

class Run {
 public:
  Run(const TrainConfig& config, const TrainCallbacks& callbacks, std::shared_ptr<KvStore> run_folder)
      : config_(config),
        callbacks_(callbacks),
        run_folder_(run_folder),
        checkpoints_(std::move(run_folder), config.keep_last) {}

  TrainOutcome Go();

 private:
  void Notice(const std::string& text) const {
    if (callbacks_.notice) callbacks_.notice(text);
  }
  Checkpoint Snapshot() const;
  void Restore(const std::string& path, const Checkpoint& checkpoint);
  void RewriteMetricsUpTo(int64_t step) const;
  torch::Tensor Loss(const Batch& batch, const torch::Tensor& projections) const;

  TrainConfig config_;
  TrainCallbacks callbacks_;
  std::shared_ptr<KvStore> run_folder_;
  CheckpointFolder checkpoints_;
  torch::Device device_{torch::kCPU};
  Network net_;
  std::unique_ptr<LarsSgd> optimiser_;
  LearningRateSchedule schedule_;
  int64_t step_ = 0;         // optimiser steps done
  uint32_t next_epoch_ = 0;  // the loader's next batch
  int64_t next_batch_ = 0;
};

Checkpoint Run::Snapshot() const {
  Checkpoint c;
  for (const auto& entry : WeightDict(net_.Named())) c.Set("model." + entry.key(), entry.value());
  const auto buffers = optimiser_->MomentumBuffers();
  c.SetInt("optimizer.count", int64_t(buffers.size()));
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (buffers[i].defined()) c.Set("optimizer." + std::to_string(i), buffers[i]);
  }
  c.SetInt("state.step", step_);
  c.SetInt("state.epoch", next_epoch_);
  c.SetInt("state.loader_step", next_batch_);
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    c.Set("rng.torch_cpu", generator.get_state());
  }
  const std::string text = TrainConfigToJson(config_).dump();
  c.Set("config", torch::from_blob(const_cast<char*>(text.data()), {int64_t(text.size())}, torch::kUInt8).clone());
  return c;
}

void Run::Restore(const std::string& path, const Checkpoint& c) {
  // Same configuration, but for the keys that change nothing the run computes.
  const torch::Tensor text = c.Get("config");
  const Json saved = Json::parse(std::string(static_cast<const char*>(text.data_ptr()), size_t(text.numel())), nullptr,
                                 /*allow_exceptions=*/false);
  TORCH_CHECK(saved.is_object(), "checkpoint ", path, " holds no readable configuration");
  const Json now = TrainConfigToJson(config_);
  for (const auto& [key, value] : now.items()) {
    if (MayChangeOnResume(key, config_)) continue;
    TORCH_CHECK(saved.contains(key) && saved[key] == value, "cannot resume from ", path, ": its ", key, " is ",
                saved.contains(key) ? saved[key].dump() : "absent", ", the configuration says ", value.dump());
  }
  torch::NoGradGuard no_grad;
  for (const auto& [prefix, module] : net_.Named()) {
    auto copy_into = [&](const std::string& name, torch::Tensor& target) {
      const torch::Tensor& value = c.Get("model." + prefix + "." + name);
      TORCH_CHECK(value.sizes() == target.sizes(), "checkpoint ", path, ": ", prefix, ".", name, " has shape ",
                  value.sizes(), ", the model ", target.sizes());
      target.copy_(value);
    };
    for (auto& item : module->named_parameters()) copy_into(item.key(), item.value());
    for (auto& item : module->named_buffers()) copy_into(item.key(), item.value());
  }
  std::vector<torch::Tensor> buffers(size_t(c.GetInt("optimizer.count")));
  for (size_t i = 0; i < buffers.size(); ++i) {
    const std::string key = "optimizer." + std::to_string(i);
    if (c.Has(key)) buffers[i] = c.Get(key);  // LoadMomentumBuffers moves it to the parameter's device
  }
  optimiser_->LoadMomentumBuffers(buffers);
  step_ = c.GetInt("state.step");
  next_epoch_ = uint32_t(c.GetInt("state.epoch"));
  next_batch_ = c.GetInt("state.loader_step");
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(c.Get("rng.torch_cpu"));
}

// After a kill, metrics.jsonl may hold steps past the checkpoint: they are run again, so
// their lines go.
void Run::RewriteMetricsUpTo(int64_t step) const {
  auto old = run_folder_->Get("metrics.jsonl");
  TORCH_CHECK(old.ok(), old.status().ToString());
  std::istringstream in(old->has_value() ? std::string((*old)->begin(), (*old)->end()) : std::string());
  std::string kept, line;
  while (std::getline(in, line)) {
    const Json row = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_object() && row.contains("step") && row["step"].is_number_integer() &&
        row["step"].get<int64_t>() <= step) {
      kept += line + "\n";
    }
  }
  const Status put =
      run_folder_->Put("metrics.jsonl", ByteSpan(reinterpret_cast<const uint8_t*>(kept.data()), kept.size()));
  TORCH_CHECK(put.ok(), put.ToString());
}

torch::Tensor Run::Loss(const Batch& batch, const torch::Tensor& projections) const {
  const int64_t n = batch.size;
  if (config_.loss == "nt_xent") return NtXentLoss(projections, config_.temperature);
  if (config_.loss == "supcon") {
    const auto labels =
        torch::from_blob(const_cast<int32_t*>(batch.area.data()), {n}, torch::kInt).to(device_, torch::kLong);
    return SupervisedContrastiveLoss(projections, labels, config_.temperature);
  }
  const auto positions =
      torch::from_blob(const_cast<double*>(batch.mni.data()), {n, 3}, torch::kDouble).to(device_, torch::kFloat);
  return SpatialNceLoss(projections, positions, {config_.temperature, config_.sigma_mm});
}

TrainOutcome Run::Go() {
  TrainOutcome outcome;
  if (config_.device == "cuda") {
    TORCH_CHECK(torch::cuda::is_available(), "device \"cuda\" was asked for, but LibTorch sees no GPU");
    device_ = torch::Device(torch::kCUDA, 0);
  }
  if (config_.torch_threads > 0) torch::set_num_threads(config_.torch_threads);
  torch::manual_seed(config_.seed);
  net_ = Network::Make(config_);
  net_.backbone->to(device_);
  net_.head->to(device_);
  if (config_.channels_last) {
    // Before the optimiser takes the parameters and a checkpoint is copied into them, so a
    // resumed run computes with the same layout as one that never stopped.
    torch::NoGradGuard no_grad;
    for (auto& p : net_.backbone->parameters()) {
      if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
  LarsOptions lars;
  lars.momentum = config_.momentum;
  lars.weight_decay = config_.weight_decay;
  lars.trust_coefficient = config_.trust_coefficient;
  lars.clip = config_.lars_clip;
  lars.adapt_bias_and_norm = config_.adapt_bias_and_norm;
  optimiser_ = std::make_unique<LarsSgd>(net_.Groups(), lars);
  schedule_ = {config_.base_lr, config_.batch_size, config_.warmup_steps,
               config_.schedule == "cosine" ? config_.steps : 0};

  if (auto latest = checkpoints_.LatestGood([&](const std::string& warning) { Notice(warning); })) {
    Restore(latest->first, latest->second);
    outcome.resumed_from_step = step_;
    outcome.last_checkpoint = latest->first;
    Notice("resuming from " + latest->first + " (step " + std::to_string(step_) + ")");
  } else {
    // Starting afresh would in time replace checkpoints a user may still recover.
    const auto names = checkpoints_.List();
    TORCH_CHECK(names.empty(), "none of the ", names.size(), " checkpoints in ", config_.run_dir,
                " reads cleanly (see above); move them away to start the run afresh");
  }
  RewriteMetricsUpTo(step_);
  std::FILE* metrics = std::fopen((config_.run_dir + "/metrics.jsonl").c_str(), "a");
  TORCH_CHECK(metrics != nullptr, "cannot append to ", config_.run_dir, "/metrics.jsonl");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> metrics_file(metrics, std::fclose);

  // The data.
  auto kvstore = OpenFileKvStore(config_.dataset, /*create=*/false);
  TORCH_CHECK(kvstore.ok(), kvstore.status().ToString());
  auto reader = PatchReader::Open(*kvstore, std::make_shared<StoreContext>());
  TORCH_CHECK(reader.ok(), reader.status().ToString());
  LoaderOptions options;
  options.sampler.seed = config_.seed;
  options.sampler.batch_size = config_.batch_size;
  options.level = config_.level;
  options.patch_size = config_.patch_size;
  options.threads = config_.loader_threads;
  options.ring_depth = config_.ring_depth;
  options.augmentation.enabled = config_.augment;
  options.views = config_.views;
  options.filter.brains = {config_.brains.begin(), config_.brains.end()};
  options.filter.sections = {config_.sections.begin(), config_.sections.end()};
  options.pin_memory = device_.is_cuda();
  options.start_epoch = next_epoch_;
  options.start_step = next_batch_;
  auto loader = Loader::Start(std::shared_ptr<const PatchReader>(std::move(*reader)), options);
  TORCH_CHECK(loader.ok(), loader.status().ToString());
  const int64_t steps_per_epoch = (*loader)->sampler().steps_per_epoch();
  DeviceInput input(**loader, device_, config_.channels_last);  // before the loader goes: it may hold a slot

  net_.backbone->train();
  net_.head->train();
  auto write_checkpoint = [&] { outcome.last_checkpoint = checkpoints_.Write(step_, Snapshot()); };
  int64_t last_checkpoint_step = outcome.resumed_from_step;
  while (step_ < config_.steps) {
    if (stop_requested) {
      if (last_checkpoint_step != step_) write_checkpoint();
      outcome.preempted = true;
      Notice("stop requested: checkpoint " + outcome.last_checkpoint + " written at step " + std::to_string(step_));
      break;
    }
    const auto start = Clock::now();
    DeviceInput::Staged staged = input.Next();
    TORCH_CHECK(staged.batch != nullptr, "the loader ended before step ", step_);
    const std::shared_ptr<const Batch> batch = staged.batch;
    const auto& images = staged.images;
    const auto projections = net_.head->forward(net_.features(images));
    const auto loss = Loss(*batch, projections);
    optimiser_->ZeroGrad();
    loss.backward();
    const double learning_rate = schedule_.At(step_);
    optimiser_->Step(learning_rate);
    ++step_;
    if (step_ < config_.steps) input.Prefetch();  // CUDA: the next copy overlaps this step
    next_epoch_ = batch->step + 1 == steps_per_epoch ? batch->epoch + 1 : batch->epoch;
    next_batch_ = batch->step + 1 == steps_per_epoch ? 0 : batch->step + 1;
    const double loss_value = loss.item<double>();  // waits for the device: the step ends here
    const auto done = Clock::now();
    StepReport report{step_,
                      batch->epoch,
                      loss_value,
                      learning_rate,
                      double(batch->size) / Seconds(done - start),
                      std::min(1.0, input.TakeWaitSeconds() / Seconds(done - start))};
    TORCH_CHECK(std::isfinite(report.loss), "the loss is not finite at step ", step_);
    Json line = {{"step", report.step},
                 {"epoch", report.epoch},
                 {"loss", report.loss},
                 {"lr", report.learning_rate},
                 {"patches_per_s", report.patches_per_second},
                 {"data_wait_fraction", report.data_wait_fraction}};
    std::fputs((line.dump() + "\n").c_str(), metrics);
    std::fflush(metrics);
    if (callbacks_.step && (step_ % config_.log_every == 0 || step_ == config_.steps)) callbacks_.step(report);
    if (step_ % config_.checkpoint_every == 0 || step_ == config_.steps) {
      write_checkpoint();
      last_checkpoint_step = step_;
    }
  }
  outcome.steps_done = step_;
  if (!outcome.preempted) {
    outcome.weights = config_.run_dir + "/weights.pt";
    ExportWeights(net_.Named(), outcome.weights);
  }
  return outcome;
}

}  // namespace

Result<TrainOutcome> RunTraining(const TrainConfig& config, const TrainCallbacks& callbacks) {
  ASSIGN_OR_RETURN(auto run_folder, OpenFileKvStore(config.run_dir, /*create=*/true));
  ASSIGN_OR_RETURN(auto lock, DatasetLock::Acquire(config.run_dir, "train", "cytonet train"));
  // Under the lock no live writer owns a temporary: those left are from killed runs.
  RETURN_IF_ERROR(RemoveStaleTemporaries(config.run_dir));
  StopSignals signals;
  try {
    return Run(config, callbacks, std::move(run_folder)).Go();
  } catch (const c10::Error& e) {
    return FailedPreconditionError(std::string("train: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError(std::string("train: ") + e.what());
  }
}

}  // namespace cytonet::train
