#include "train/distributed.h"

// c10d's backends; their headers are compiled only with these switches on (see
// train/CMakeLists.txt), as in the wheel's own build.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef CYTONET_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "dataset/mpi_session.h"

namespace cytonet::train {
namespace {

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

int EnvInt(const char* name, const char* fallback_name) {
  const char* value = Env(name);
  if (value == nullptr && fallback_name != nullptr) value = Env(fallback_name);
  TORCH_CHECK(value != nullptr, "distributed start-up: ", name, " is not set");
  char* end = nullptr;
  const long parsed = std::strtol(value, &end, 10);
  TORCH_CHECK(*end == '\0' && parsed >= 0 && parsed < (1 << 20), "distributed start-up: ", name, "=\"", value,
              "\" is not a rank count");
  return int(parsed);
}

std::string ThisHostName() {
  char name[256] = {};
  TORCH_CHECK(gethostname(name, sizeof(name) - 1) == 0, "distributed start-up: gethostname failed");
  return name;
}

c10::intrusive_ptr<c10d::TCPStore> OpenStore(const std::string& host, uint16_t port, bool server, int size,
                                             std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = port;
  options.isServer = server;
  options.numWorkers = size_t(size);
  options.waitWorkers = false;  // under MPI the others learn the port only after this returns
  options.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(host, options);
}

c10::intrusive_ptr<c10d::Backend> MakeBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                              const torch::Device& device, std::chrono::milliseconds timeout) {
  if (device.is_cuda()) {
#ifdef CYTONET_WITH_NCCL
    // Work::wait() then blocks the host and throws at the timeout, as Gloo's does, instead
    // of only ordering streams (a dead peer would otherwise surface at the watchdog's abort).
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
    TORCH_CHECK(false, "this build has no NCCL backend");
#endif
  }
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  if (const char* interface = Env("GLOO_SOCKET_IFNAME")) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class AllGatherFunction : public torch::autograd::Function<AllGatherFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& local,
                               const std::shared_ptr<ProcessGroup>& group) {
    ctx->saved_data["group"] = SaveGroup(group);
    ctx->saved_data["rows"] = local.size(0);
    return group->AllGather(local);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list gradients) {
    ProcessGroup& group = SavedGroup(ctx->saved_data["group"]);
    const int64_t rows = ctx->saved_data["rows"].toInt();
    std::vector<torch::Tensor> summed = {gradients[0].contiguous().clone()};
    group.AllReduceSum(summed);
    return {summed[0].narrow(0, group.rank() * rows, rows), torch::Tensor()};
  }
};

}  // namespace

std::shared_ptr<ProcessGroup> ProcessGroup::Alone() { return std::shared_ptr<ProcessGroup>(new ProcessGroup()); }

bool ProcessGroup::LaunchedAsRanks() {
  return LaunchedUnderMpi() || (Env("WORLD_SIZE") != nullptr && Env("MASTER_ADDR") != nullptr);
}

std::shared_ptr<ProcessGroup> ProcessGroup::Join(MpiSession* mpi, const torch::Device& device,
                                                 std::chrono::milliseconds timeout) {
  std::shared_ptr<ProcessGroup> group(new ProcessGroup());
  group->device_ = device;
  group->timeout_ = timeout;
  std::string host;
  uint16_t port = 0;
  if (mpi != nullptr) {
    group->rank_ = mpi->rank();
    group->size_ = mpi->size();
    if (group->size_ == 1) return group;
    // Rank 0 opens the store where it can and tells the others (an empty address: it could not).
    std::string address, error;
    if (group->rank_ == 0) {
      try {
        host = Env("MASTER_ADDR") ? Env("MASTER_ADDR") : ThisHostName();
        const int wanted_port = Env("MASTER_PORT") ? EnvInt("MASTER_PORT", nullptr) : 0;
        group->store_ = OpenStore(host, uint16_t(wanted_port), true, group->size_, timeout);
        port = static_cast<c10d::TCPStore&>(*group->store_).getPort();
        address = host + ":" + std::to_string(port);
      } catch (const c10::Error& e) {
        error = e.what_without_backtrace();
      }
    }
    address = mpi->BroadcastString(address);
    TORCH_CHECK(error.empty(), "distributed start-up: rank 0 cannot open the rendezvous store: ", error);
    TORCH_CHECK(!address.empty(), "distributed start-up: rank 0 could not open the rendezvous store (see its message)");
    if (group->rank_ != 0) {
      const size_t colon = address.rfind(':');
      host = address.substr(0, colon);
      port = uint16_t(std::stoi(address.substr(colon + 1)));
      group->store_ = OpenStore(host, port, false, group->size_, timeout);
    }
  } else {
    group->rank_ = EnvInt("RANK", "SLURM_PROCID");
    group->size_ = EnvInt("WORLD_SIZE", "SLURM_NTASKS");
    TORCH_CHECK(group->size_ >= 1 && group->rank_ < group->size_, "distributed start-up: RANK ", group->rank_,
                " is not below WORLD_SIZE ", group->size_);
    if (group->size_ == 1) return group;
    host = Env("MASTER_ADDR") ? Env("MASTER_ADDR") : "";
    TORCH_CHECK(!host.empty(), "distributed start-up: MASTER_ADDR is not set");
    port = uint16_t(EnvInt("MASTER_PORT", nullptr));
    group->store_ = OpenStore(host, port, group->rank_ == 0, group->size_, timeout);
  }
  group->backend_ = MakeBackend(group->store_, group->rank_, group->size_, device, timeout);
  return group;
}

void ProcessGroup::Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {  // c10::Error, or Gloo's own exceptions (a closed connection)
    const auto* error = dynamic_cast<const c10::Error*>(&e);
    TORCH_CHECK(false, what, " failed on rank ", rank_, " of ", size_, " (another rank may have died; the timeout is ",
                timeout_.count() / 1000.0, " s): ", error ? error->what_without_backtrace() : e.what());
  }
}

void ProcessGroup::AllReduceSum(std::vector<torch::Tensor>& tensors) {
  if (!backend_) return;
  for (auto& tensor : tensors) Wait(StartAllReduceSum(tensor), "all-reduce");
}

void ProcessGroup::AllReduceMax(std::vector<torch::Tensor>& tensors) {
  if (!backend_) return;
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MAX;
  options.timeout = timeout_;
  for (auto& tensor : tensors) {
    std::vector<torch::Tensor> one = {tensor};
    Wait(backend_->allreduce(one, options), "all-reduce (max)");
  }
}

c10::intrusive_ptr<c10d::Work> ProcessGroup::StartAllReduceSum(torch::Tensor& tensor) {
  TORCH_CHECK(backend_, "StartAllReduceSum needs other ranks");
  TORCH_CHECK(tensor.is_contiguous(), "all-reduce: the tensor must be contiguous");
  c10d::AllreduceOptions options;
  options.timeout = timeout_;
  std::vector<torch::Tensor> one = {tensor};
  return backend_->allreduce(one, options);
}

void ProcessGroup::Broadcast(std::vector<torch::Tensor>& tensors) {
  if (!backend_) return;
  c10d::BroadcastOptions options;
  options.timeout = timeout_;
  // One tensor per call: the backends want one dtype per call, and dense standard layouts.
  for (auto& tensor : tensors) {
    std::vector<torch::Tensor> one = {tensor.contiguous()};
    Wait(backend_->broadcast(one, options), "broadcast");
    if (!one[0].is_same(tensor)) tensor.copy_(one[0]);
  }
}

torch::Tensor ProcessGroup::AllGather(const torch::Tensor& local) {
  if (!backend_) return local;
  std::vector<torch::Tensor> input = {local.contiguous()};
  std::vector<std::vector<torch::Tensor>> output(1);
  for (int r = 0; r < size_; ++r) output[0].push_back(torch::empty_like(input[0]));
  c10d::AllgatherOptions options;
  options.timeout = timeout_;
  Wait(backend_->allgather(output, input, options), "all-gather");
  return torch::cat(output[0], 0);
}

std::string ProcessGroup::BroadcastText(const std::string& text) {
  if (!backend_) return text;
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(device_);
  std::vector<torch::Tensor> length = {torch::full({1}, int64_t(text.size()), options)};
  Broadcast(length);
  const int64_t n = length[0].item<int64_t>();
  torch::Tensor bytes = torch::zeros({n}, torch::TensorOptions().dtype(torch::kUInt8));
  if (rank_ == 0) std::memcpy(bytes.data_ptr(), text.data(), size_t(n));
  std::vector<torch::Tensor> on_device = {bytes.to(device_)};
  Broadcast(on_device);
  bytes = on_device[0].cpu();
  return std::string(static_cast<const char*>(bytes.data_ptr()), size_t(n));
}

void ProcessGroup::Agree(const std::string& error, const std::string& phase) {
  if (!backend_) {
    TORCH_CHECK(error.empty(), error);
    return;
  }
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(device_);
  const torch::Tensor failed = AllGather(torch::full({1}, int64_t(error.empty() ? 0 : 1), options)).cpu();
  TORCH_CHECK(error.empty(), error);
  std::string ranks;
  for (int r = 0; r < size_; ++r) {
    if (failed[r].item<int64_t>() != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  }
  TORCH_CHECK(ranks.empty(), "rank(s) ", ranks, " failed during ", phase, " (see their messages); rank ", rank_,
              " stops too");
}

torch::Tensor AllGatherWithGradient(const std::shared_ptr<ProcessGroup>& group, const torch::Tensor& local) {
  if (group->size() == 1) return local;
  return AllGatherFunction::apply(local, group);
}

torch::Tensor MeanOverAllRanks(ProcessGroup& group, const torch::Tensor& local_mean, const torch::Tensor& local_count) {
  std::vector<torch::Tensor> count = {local_count.detach().to(torch::kDouble).reshape({1}).clone()};
  group.AllReduceSum(count);
  const auto all = count[0].clamp_min(1).to(local_mean.scalar_type());
  return local_mean * (local_count.to(local_mean.scalar_type()) * double(group.size()) / all).squeeze(0);
}

void BroadcastModule(ProcessGroup& group, torch::nn::Module& module) {
  if (group.size() == 1) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p.data());
  for (auto& b : module.buffers()) tensors.push_back(b);
  group.Broadcast(tensors);
}

GradientAllReduce::GradientAllReduce(std::shared_ptr<ProcessGroup> group, std::vector<torch::Tensor> parameters,
                                     int64_t bucket_bytes, int64_t first_bucket_bytes)
    : group_(std::move(group)), parameters_(std::move(parameters)) {
  for (size_t k = 0; k < parameters_.size(); ++k) {
    TORCH_CHECK(parameters_[k].requires_grad(), "GradientAllReduce: parameter ", k, " does not require a gradient");
  }
  bucket_of_.resize(parameters_.size());
  slot_of_.resize(parameters_.size());
  arrived_.assign(parameters_.size(), false);
  int64_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const torch::Tensor& p = parameters_[k];
    const int64_t cap = buckets_.size() == 1 ? first_bucket_bytes : bucket_bytes;
    const bool fits = !buckets_.empty() && bytes < cap && buckets_.back().flat.scalar_type() == p.scalar_type() &&
                      buckets_.back().flat.device() == p.device();
    if (!fits) {
      buckets_.emplace_back();
      buckets_.back().flat = torch::empty({0}, p.options());
      bytes = 0;
    }
    Bucket& bucket = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = bucket.members.size();
    bucket.offsets.push_back(
        bucket.members.empty() ? 0 : bucket.offsets.back() + parameters_[bucket.members.back()].numel());
    bucket.members.push_back(k);
    bytes += p.numel() * int64_t(p.element_size());
  }
  for (Bucket& bucket : buckets_) {
    const size_t last = bucket.members.back();
    bucket.flat = torch::zeros({bucket.offsets.back() + parameters_[last].numel()},
                               parameters_[last].options().requires_grad(false));
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    const unsigned handle =
        parameters_[k].register_hook([this, k](const torch::Tensor& gradient) { OnGradient(k, gradient); });
    hooks_.emplace_back(k, handle);
  }
}

GradientAllReduce::~GradientAllReduce() {
  for (const auto& [parameter, handle] : hooks_) parameters_[parameter].remove_hook(handle);
}

void GradientAllReduce::Arm() {
  TORCH_CHECK(!armed_, "GradientAllReduce: Arm() twice without Finish()");
  std::fill(arrived_.begin(), arrived_.end(), false);
  for (Bucket& bucket : buckets_) bucket.pending = bucket.members.size(), bucket.work.reset();
  next_to_start_ = 0;
  armed_ = true;
}

void GradientAllReduce::OnGradient(size_t parameter, const torch::Tensor& gradient) {
  if (!armed_) return;  // a backward pass outside training (tests, probes)
  TORCH_CHECK(!arrived_[parameter], "GradientAllReduce: parameter ", parameter,
              " got two gradients in one backward pass");
  Bucket& bucket = buckets_[bucket_of_[parameter]];
  const size_t slot = slot_of_[parameter];
  const torch::Tensor& p = parameters_[parameter];
  bucket.flat.narrow(0, bucket.offsets[slot], p.numel()).view(p.sizes()).copy_(gradient);
  arrived_[parameter] = true;
  --bucket.pending;
  StartReadyBuckets();
}

// In bucket order on every rank, whatever order the gradients arrived in: the backends
// match collectives by their order.
void GradientAllReduce::StartReadyBuckets() {
  while (next_to_start_ < buckets_.size() && buckets_[next_to_start_].pending == 0) {
    Bucket& bucket = buckets_[next_to_start_++];
    bucket.work = group_->StartAllReduceSum(bucket.flat);
  }
}

void GradientAllReduce::Finish() {
  TORCH_CHECK(armed_, "GradientAllReduce: Finish() without Arm()");
  armed_ = false;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    TORCH_CHECK(arrived_[k], "GradientAllReduce: parameter ", k, " of ", parameters_.size(),
                " got no gradient in this backward pass; every parameter must take part in the loss");
  }
  torch::NoGradGuard no_grad;
  for (Bucket& bucket : buckets_) {
    group_->Wait(bucket.work, "all-reduce of gradients");
    bucket.work.reset();
    bucket.flat.div_(group_->size());
    for (size_t slot = 0; slot < bucket.members.size(); ++slot) {
      torch::Tensor& p = parameters_[bucket.members[slot]];
      const torch::Tensor mean = bucket.flat.narrow(0, bucket.offsets[slot], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(mean);
      } else {
        p.mutable_grad() = torch::empty_like(p).copy_(mean);
      }
    }
  }
}

}  // namespace cytonet::train
