#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/cuda/CUDAFunctions.h>
#include <signal.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <sstream>
#include <tuple>

#include "dataset/dataset.h"
#include "dataset/lock.h"
#include "dataset/mpi_session.h"
#include "loader/loader.h"
#include "store/kvstore.h"
#include "train/checkpoint.h"
#include "train/device_input.h"
#include "train/distributed.h"
#include "train/lars.h"
#include "train/losses.h"
#include "train/mixed_precision.h"
#include "train/network.h"
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
         key == "run_dir" || key == "dataset" || key == "collective_timeout_s" || key == "gradient_checkpointing";
}

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// One rank's part of a run. Rank 0 alone reads and writes the run folder (checkpoints,
// metrics, weights) and hands its state to the others at the start.
class Run {
 public:
  // `run_folder`: the locked run folder on rank 0, null on the other ranks.
  Run(const TrainConfig& config, const TrainCallbacks& callbacks, std::shared_ptr<KvStore> run_folder,
      std::shared_ptr<ProcessGroup> group, torch::Device device)
      : config_(config),
        callbacks_(callbacks),
        run_folder_(run_folder),
        checkpoints_(std::move(run_folder), config.keep_last),
        group_(std::move(group)),
        device_(device) {}

  TrainOutcome Go();

 private:
  void Notice(const std::string& text) const {
    if (callbacks_.notice) callbacks_.notice(text);
  }
  Checkpoint Snapshot() const;
  void Restore(const std::string& path, const Checkpoint& checkpoint);
  void ShareStateOfRankZero();
  void RewriteMetricsUpTo(int64_t step) const;
  torch::Tensor Loss(const Batch& batch, const torch::Tensor& projections) const;
  bool rank_zero() const { return group_->rank() == 0; }

  TrainConfig config_;
  TrainCallbacks callbacks_;
  std::shared_ptr<KvStore> run_folder_;
  CheckpointFolder checkpoints_;
  std::shared_ptr<ProcessGroup> group_;
  torch::Device device_;
  Network net_;
  std::unique_ptr<LarsSgd> optimiser_;
  Precision precision_ = Precision::kFp32;
  LossScaler scaler_{false};
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
  if (scaler_.enabled()) {
    c.Set("state.loss_scale", torch::tensor(scaler_.scale(), torch::kDouble));
    c.SetInt("state.loss_scale_good_steps", scaler_.good_steps());
    c.SetInt("state.skipped_steps", scaler_.skipped_steps());
  }
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    c.Set("rng.torch_cpu", generator.get_state());
  }
  c.SetConfig(TrainConfigToJson(config_));
  return c;
}

void Run::Restore(const std::string& path, const Checkpoint& c) {
  // Same configuration, but for the keys that change nothing the run computes.
  const Json saved = c.Config(path);
  const Json now = TrainConfigToJson(config_);
  const Json defaults = TrainConfigToJson(TrainConfig());
  for (const auto& [key, value] : now.items()) {
    if (MayChangeOnResume(key, config_)) continue;
    // A key newer than the checkpoint: its run had the default.
    if (!saved.contains(key) && defaults.contains(key) && defaults[key] == value) continue;
    TORCH_CHECK(saved.contains(key) && saved[key] == value, "cannot resume from ", path, ": its ", key, " is ",
                saved.contains(key) ? saved[key].dump() : "absent", ", the configuration says ", value.dump());
  }
  net_.Load(c, path);
  std::vector<torch::Tensor> buffers(size_t(c.GetInt("optimizer.count")));
  for (size_t i = 0; i < buffers.size(); ++i) {
    const std::string key = "optimizer." + std::to_string(i);
    if (c.Has(key)) buffers[i] = c.Get(key);  // LoadMomentumBuffers moves it to the parameter's device
  }
  optimiser_->LoadMomentumBuffers(buffers);
  step_ = c.GetInt("state.step");
  next_epoch_ = uint32_t(c.GetInt("state.epoch"));
  next_batch_ = c.GetInt("state.loader_step");
  if (scaler_.enabled()) {
    scaler_.Restore(c.Get("state.loss_scale").item<double>(), c.GetInt("state.loss_scale_good_steps"),
                    c.GetInt("state.skipped_steps"));
  }
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

// This rank's anchors against every rank's samples: the projections are all-gathered (the
// backward pass sums each rank's gradient for them), the positions and labels too. Rank r's
// rows sit at r·n of the gathered batch, as in the one-process batch of all ranks.
torch::Tensor Run::Loss(const Batch& batch, const torch::Tensor& projections) const {
  const int64_t n = batch.size;
  const auto labels = [&] {
    return torch::from_blob(const_cast<int32_t*>(batch.area.data()), {n}, torch::kInt).to(device_, torch::kLong);
  };
  if (group_->size() == 1) {
    if (config_.loss == "nt_xent") return NtXentLoss(projections, config_.temperature);
    if (config_.loss == "supcon") return SupervisedContrastiveLoss(projections, labels(), config_.temperature);
  }
  const int64_t first = group_->rank() * n;
  // fp32 before the gather: under autocast the projections are half precision, and the
  // gather's backward sums every rank's gradient.
  const auto samples = AllGatherWithGradient(group_, projections.to(torch::kFloat));
  if (config_.loss == "nt_xent" || config_.loss == "supcon") {
    // NT-Xent with two views is the same-label loss with the point as the label: row v·b + j
    // of rank r's batch is view v of the epoch's sample r·b + j.
    const int64_t points = n / config_.views;
    const auto mine =
        config_.loss == "supcon"
            ? labels()
            : torch::arange(n, torch::TensorOptions().dtype(torch::kLong).device(device_)).remainder(points) +
                  group_->rank() * points;
    const auto all = group_->AllGather(mine);
    const auto local_mean = SameLabelContrastiveLoss(projections, mine, samples, all, first, config_.temperature);
    // Anchors with another sample of their label (NT-Xent: all); the ranks may count
    // different numbers, so the mean is taken over all ranks' anchors.
    const auto counted = ((mine.unsqueeze(1) == all.unsqueeze(0)).sum(1) > 1).sum();
    return MeanOverAllRanks(*group_, local_mean, counted);
  }
  const auto positions =
      torch::from_blob(const_cast<double*>(batch.mni.data()), {n, 3}, torch::kDouble).to(device_, torch::kFloat);
  const auto all_positions = group_->AllGather(positions);
  return SpatialNceLoss(projections, positions, samples, all_positions, first, {config_.temperature, config_.sigma_mm});
}

// Parameters, buffers, momentum, the loader's position and the generator from rank 0 (after
// its resume), so that every rank starts from the same state.
void Run::ShareStateOfRankZero() {
  if (group_->size() == 1) return;
  BroadcastModule(*group_, *net_.backbone);
  BroadcastModule(*group_, *net_.head);
  const std::vector<torch::Tensor> parameters = optimiser_->Parameters();
  std::vector<torch::Tensor> momentum = optimiser_->MomentumBuffers();
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(device_);
  std::vector<torch::Tensor> stepped = {torch::zeros({int64_t(momentum.size())}, long_options)};
  for (size_t i = 0; i < momentum.size(); ++i) stepped[0][int64_t(i)] = int64_t(momentum[i].defined());
  group_->Broadcast(stepped);
  const torch::Tensor stepped_on_rank_zero = stepped[0].cpu();
  std::vector<torch::Tensor> shared;
  for (size_t i = 0; i < momentum.size(); ++i) {
    if (stepped_on_rank_zero[int64_t(i)].item<int64_t>() == 0) {
      momentum[i] = torch::Tensor();
      continue;
    }
    if (!momentum[i].defined()) momentum[i] = torch::zeros_like(parameters[i]);
    shared.push_back(momentum[i]);
  }
  group_->Broadcast(shared);
  optimiser_->LoadMomentumBuffers(momentum);
  std::vector<torch::Tensor> state = {torch::tensor({step_, int64_t(next_epoch_), next_batch_}, long_options)};
  group_->Broadcast(state);
  const torch::Tensor values = state[0].cpu();
  step_ = values[0].item<int64_t>();
  next_epoch_ = uint32_t(values[1].item<int64_t>());
  next_batch_ = values[2].item<int64_t>();
  if (scaler_.enabled()) {
    std::vector<torch::Tensor> scaling = {
        torch::tensor({scaler_.scale(), double(scaler_.good_steps()), double(scaler_.skipped_steps())},
                      torch::TensorOptions().dtype(torch::kDouble).device(device_))};
    group_->Broadcast(scaling);
    const torch::Tensor shared_scaling = scaling[0].cpu();
    scaler_.Restore(shared_scaling[0].item<double>(), int64_t(shared_scaling[1].item<double>()),
                    int64_t(shared_scaling[2].item<double>()));
  }
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  std::vector<torch::Tensor> random_state = {generator.get_state().to(device_)};
  group_->Broadcast(random_state);
  generator.set_state(random_state[0].cpu());
}

TrainOutcome Run::Go() {
  TrainOutcome outcome;
  const int ranks = group_->size();
  outcome.rank = group_->rank();
  outcome.ranks = ranks;
  if (config_.torch_threads > 0) torch::set_num_threads(config_.torch_threads);
  // Set-up errors (a changed configuration, a damaged run folder, a missing section) stop
  // every rank together rather than leaving the others in a collective.
  std::string setup_error;
  try {
    TORCH_CHECK(config_.batch_size % ranks == 0, "batch_size ", config_.batch_size, " is not divisible by the ", ranks,
                " ranks (it is the batch of all ranks together)");
  } catch (const c10::Error& e) {
    setup_error = e.what_without_backtrace();
  }
  group_->Agree(setup_error, "set-up");
  precision_ = ParsePrecision(config_.precision);
  scaler_ = LossScaler(precision_ == Precision::kFp16);
  torch::manual_seed(config_.seed);
  net_ = Network::Make(config_);
  net_.to(device_);
  AttachProcessGroup(*net_.backbone, group_);
  AttachProcessGroup(*net_.head, group_);
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

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> metrics_file(nullptr, std::fclose);
  try {
    if (rank_zero()) {
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
      metrics_file.reset(std::fopen((config_.run_dir + "/metrics.jsonl").c_str(), "a"));
      TORCH_CHECK(metrics_file != nullptr, "cannot append to ", config_.run_dir, "/metrics.jsonl");
    }
  } catch (const std::exception& e) {  // also std::bad_alloc or a filesystem error
    const auto* error = dynamic_cast<const c10::Error*>(&e);
    setup_error = error ? error->what_without_backtrace() : e.what();
  }
  group_->Agree(setup_error, "resume");
  ShareStateOfRankZero();
  if (ranks > 1 && step_ > 0 && !rank_zero()) outcome.resumed_from_step = step_;
  std::FILE* metrics = metrics_file.get();

  // The data.
  auto kvstore = OpenFileKvStore(config_.dataset, /*create=*/false);
  auto reader = kvstore.ok() ? PatchReader::Open(*kvstore, std::make_shared<StoreContext>())
                             : Result<std::unique_ptr<PatchReader>>(kvstore.status());
  group_->Agree(reader.ok() ? "" : reader.status().ToString(), "opening the dataset");
  LoaderOptions options;
  options.sampler.seed = config_.seed;
  options.sampler.batch_size = config_.batch_size / ranks;  // this rank's share
  options.sampler.rank = group_->rank();
  options.sampler.world_size = ranks;
  options.level = config_.level;
  options.patch_size = config_.patch_size;
  options.threads = config_.loader_threads;
  options.ring_depth = config_.ring_depth;
  options.augmentation.enabled = config_.augment;
  options.augment_on_device = config_.augment && config_.augment_on_device;
  options.views = config_.views;
  options.filter.brains = {config_.brains.begin(), config_.brains.end()};
  options.filter.sections = {config_.sections.begin(), config_.sections.end()};
  options.pin_memory = device_.is_cuda();
  options.start_epoch = next_epoch_;
  options.start_step = next_batch_;
  auto loader = Loader::Start(std::shared_ptr<const PatchReader>(std::move(*reader)), options);
  group_->Agree(loader.ok() ? "" : loader.status().ToString(), "starting the loader");
  const int64_t steps_per_epoch = (*loader)->sampler().steps_per_epoch();
  DeviceInput input(**loader, device_, config_.channels_last);  // before the loader goes: it may hold a slot

  net_.backbone->train();
  net_.head->train();
  std::vector<torch::Tensor> all_parameters = net_.backbone->parameters();
  for (const auto& p : net_.head->parameters()) all_parameters.push_back(p);
  std::unique_ptr<GradientAllReduce> gradient_all_reduce;
  if (ranks > 1) gradient_all_reduce = std::make_unique<GradientAllReduce>(group_, all_parameters);
  // Rank 0 writes; every rank learns whether it could before going on, so a failed write
  // (a full disk) stops all of them with its message.
  auto write_checkpoint = [&] {
    std::string error;
    if (rank_zero()) {
      try {
        outcome.last_checkpoint = checkpoints_.Write(step_, Snapshot());
      } catch (const std::exception& e) {
        const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
        error = c10_error ? c10_error->what_without_backtrace() : e.what();
      }
    }
    group_->Agree(error, "writing the checkpoint of step " + std::to_string(step_));
  };
  int64_t last_checkpoint_step = outcome.resumed_from_step;
  // Whether any rank was asked to stop (they may get the signal at different steps), and the
  // mean loss over ranks: one small all-reduce per step.
  auto agree_on_step = [&](double loss, bool stop) {
    if (ranks == 1) return std::make_pair(loss, stop);
    std::vector<torch::Tensor> values = {
        torch::tensor({loss / ranks, stop ? 1.0 : 0.0}, torch::TensorOptions().dtype(torch::kDouble).device(device_))};
    group_->AllReduceSum(values);
    const torch::Tensor summed = values[0].cpu();
    return std::make_pair(summed[0].item<double>(), summed[1].item<double>() > 0);
  };
  // Rank 0: the step's line in metrics.jsonl, and progress every log_every steps.
  auto write_metrics = [&](const StepReport& report) {
    Json line = {{"step", report.step},
                 {"epoch", report.epoch},
                 {"loss", report.loss},
                 {"lr", report.learning_rate},
                 {"patches_per_s", report.patches_per_second},
                 {"data_wait_fraction", report.data_wait_fraction}};
    if (scaler_.enabled()) line["loss_scale"] = scaler_.scale(), line["skipped_steps"] = scaler_.skipped_steps();
    std::fputs((line.dump() + "\n").c_str(), metrics);
    std::fflush(metrics);
    if (callbacks_.step && (step_ % config_.log_every == 0 || step_ == config_.steps)) callbacks_.step(report);
  };
  bool stop = agree_on_step(0, stop_requested != 0).second;
  while (step_ < config_.steps) {
    if (stop) {
      if (last_checkpoint_step != step_) write_checkpoint();  // every rank leaves after it is written
      outcome.preempted = true;
      if (rank_zero()) {
        Notice("stop requested: checkpoint " + outcome.last_checkpoint + " written at step " + std::to_string(step_));
      }
      break;
    }
    const auto start = Clock::now();
    DeviceInput::Staged staged = input.Next();
    TORCH_CHECK(staged.batch != nullptr, "the loader ended before step ", step_);
    const std::shared_ptr<const Batch> batch = staged.batch;
    const auto& images = staged.images;
    torch::Tensor projections;
    {
      AutocastScope autocast(precision_, device_);
      projections = net_.head->forward(net_.features(images));
    }
    const auto loss = Loss(*batch, projections);  // fp32
    optimiser_->ZeroGrad();
    if (gradient_all_reduce) gradient_all_reduce->Arm();
    scaler_.Scale(loss).backward();
    if (gradient_all_reduce) gradient_all_reduce->Finish();
    const double learning_rate = schedule_.At(step_);
    // fp16: after the all-reduce every rank sees the same overflow and skips the same step.
    const bool step_ok = scaler_.Unscale(all_parameters);
    if (step_ok) optimiser_->Step(learning_rate);
    scaler_.Update(step_ok);
    ++step_;
    if (step_ < config_.steps) input.Prefetch();  // CUDA: the next copy overlaps this step
    next_epoch_ = batch->step + 1 == steps_per_epoch ? batch->epoch + 1 : batch->epoch;
    next_batch_ = batch->step + 1 == steps_per_epoch ? 0 : batch->step + 1;
    // Waits for the device: the step ends here.
    double loss_value = 0;
    std::tie(loss_value, stop) = agree_on_step(loss.item<double>(), stop_requested != 0);
    const auto done = Clock::now();
    StepReport report{step_,
                      batch->epoch,
                      loss_value,
                      learning_rate,
                      double(batch->size * ranks) / Seconds(done - start),
                      std::min(1.0, input.TakeWaitSeconds() / Seconds(done - start))};
    TORCH_CHECK(std::isfinite(report.loss), "the loss is not finite at step ", step_);
    if (rank_zero()) write_metrics(report);
    if (step_ % config_.checkpoint_every == 0 || step_ == config_.steps) {
      write_checkpoint();
      last_checkpoint_step = step_;
    }
  }
  outcome.steps_done = step_;
  if (!outcome.preempted && rank_zero()) {
    outcome.weights = config_.run_dir + "/weights.pt";
    ExportWeights(net_.Named(), outcome.weights);
  }
  return outcome;
}

}  // namespace

namespace {

Result<TrainOutcome> RunRank(const TrainConfig& config, const TrainCallbacks& callbacks, MpiSession* mpi) {
  torch::Device device(torch::kCPU);
  if (config.device == "cuda") {
    if (!torch::cuda::is_available()) {
      return FailedPreconditionError("train: device \"cuda\" was asked for, but LibTorch sees no GPU");
    }
    device = torch::Device(torch::kCUDA, int8_t(LocalRank() % int(torch::cuda::device_count())));
    // The rank's GPU is the current one from here on: pinned host memory, NCCL and every
    // other call on "the current device" then make no context on GPU 0.
    c10::cuda::set_device(device.index());
  }
  std::shared_ptr<ProcessGroup> group;
  try {
    group =
        ProcessGroup::LaunchedAsRanks()
            ? ProcessGroup::Join(mpi, device, std::chrono::milliseconds(int64_t(config.collective_timeout_s * 1000)))
            : ProcessGroup::Alone();
  } catch (const c10::Error& e) {
    return FailedPreconditionError(std::string("train: ") + e.what_without_backtrace());
  }
  // Rank 0 owns the run folder; the others start once it holds the lock.
  std::shared_ptr<KvStore> run_folder;
  std::optional<DatasetLock> lock;
  Status opened = Status::Ok();
  if (group->rank() == 0) {
    opened = [&]() -> Status {
      ASSIGN_OR_RETURN(run_folder, OpenFileKvStore(config.run_dir, /*create=*/true));
      ASSIGN_OR_RETURN(auto taken, DatasetLock::Acquire(config.run_dir, "train", "cytonet train"));
      lock.emplace(std::move(taken));
      // Under the lock no live writer owns a temporary: those left are from killed runs.
      return RemoveStaleTemporaries(config.run_dir);
    }();
  }
  try {
    group->Agree(opened.ok() ? "" : opened.ToString(), "opening the run folder");
    StopSignals signals;
    return Run(config, callbacks, std::move(run_folder), group, device).Go();
  } catch (const c10::Error& e) {
    if (!opened.ok()) return opened;
    return FailedPreconditionError(std::string("train: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError(std::string("train: ") + e.what());
  }
}

}  // namespace

Result<TrainOutcome> RunTraining(const TrainConfig& config, const TrainCallbacks& callbacks) {
  std::unique_ptr<MpiSession> mpi;
  if (LaunchedUnderMpi()) {
    ASSIGN_OR_RETURN(mpi, MpiSession::Start(nullptr, nullptr, 0));
  }
  return RunRank(config, callbacks, mpi.get());
}

}  // namespace cytonet::train
