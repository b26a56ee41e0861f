#include "train/device_input.h"

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <chrono>
#include <exception>
#include <utility>

#include "train/device_augmentation.h"

namespace cytonet::train {

struct DeviceInput::Copy {
  std::shared_ptr<const Batch> batch;
  torch::Tensor images;  // uint8 on the GPU, written by the side stream
  at::cuda::CUDAEvent done;
  // A copy dropped unused (preemption, an error) must finish reading the slot before the
  // slot goes back to the loader's workers.
  ~Copy() { done.synchronize(); }
};

DeviceInput::DeviceInput(Loader& loader, torch::Device device, bool channels_last)
    : loader_(&loader), device_(device), channels_last_(channels_last) {}
DeviceInput::~DeviceInput() = default;

std::shared_ptr<const Batch> DeviceInput::NextFromLoader() {
  const auto start = std::chrono::steady_clock::now();
  auto next = loader_->Next();
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  TORCH_CHECK(next.ok(), next.status().ToString());
  return *next;
}

torch::Tensor NormaliseGrey(const torch::Tensor& images) {
  return images.to(torch::kFloat).div_(255.0).sub_(0.5).div_(0.25);
}

torch::Tensor DeviceInput::Normalise(torch::Tensor images, const Batch& batch) const {
  // Source boxes become patches here, on the device (train/device_augmentation.h).
  auto normalised =
      batch.augment_on_device ? AugmentOnDevice(images, batch).sub_(0.5).div_(0.25) : NormaliseGrey(images);
  return channels_last_ ? normalised.contiguous(torch::MemoryFormat::ChannelsLast) : normalised;
}

// The slot's uint8 pixels as a tensor, without a copy.
torch::Tensor DeviceInput::HostImages(const Batch& b) {
  return torch::from_blob(const_cast<uint8_t*>(b.images), {b.size, 1, b.image_size, b.image_size}, torch::kUInt8);
}

double DeviceInput::TakeWaitSeconds() {
  const double seconds = wait_seconds_;
  wait_seconds_ = 0;
  return seconds;
}

void DeviceInput::Prefetch() {
  if (!device_.is_cuda() || pending_ || prefetch_error_) return;
  auto copy = std::make_unique<Copy>();
  try {
    copy->batch = NextFromLoader();
  } catch (...) {
    // The step that prefetched still finishes (its metrics, its checkpoint); the error
    // belongs to the next one.
    prefetch_error_ = std::current_exception();
    return;
  }
  if (!copy->batch) return;
  const Batch& b = *copy->batch;
  const auto host = HostImages(b);
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
  {
    const c10::cuda::CUDAStreamGuard on_side(side);
    // Asynchronous only from pinned memory; an unpinned slot copies synchronously.
    copy->images = host.to(device_, /*non_blocking=*/b.pinned);
    copy->done.record(side);
  }
  pending_ = std::move(copy);
}

DeviceInput::Staged DeviceInput::Next() {
  if (!device_.is_cuda()) {
    Staged staged{NextFromLoader(), {}};
    if (staged.batch) staged.images = Normalise(HostImages(*staged.batch), *staged.batch);
    return staged;
  }
  Prefetch();  // the first step, or a caller that did not prefetch
  if (prefetch_error_) std::rethrow_exception(std::exchange(prefetch_error_, nullptr));
  if (!pending_) return {};
  std::unique_ptr<Copy> copy = std::move(pending_);
  const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device_.index());
  copy->done.block(compute);
  // The side stream allocated the tensor; tell the caching allocator the compute stream uses
  // it too, so its memory is not handed out again before that work is done.
  c10::cuda::CUDACachingAllocator::recordStream(copy->images.storage().data_ptr(), compute);
  // The slot may go back once the copy has finished: by the time the step that uses these
  // images has ended (the caller drops the Staged after the loss reaches the host) it has.
  torch::Tensor images = Normalise(copy->images, *copy->batch);
  return {std::move(copy->batch), std::move(images)};
}

}  // namespace cytonet::train
