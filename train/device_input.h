// The input path of training: loader batches (uint8 in the loader's ring slots) to
// normalised float images on the device, (grey / 255 − 0.5) / 0.25. Batches of source boxes
// (LoaderOptions::augment_on_device) are augmented on the device first.
//
// On CPU a slot is wrapped without a copy and converted in place of the step. On CUDA the
// slots are pinned, and each batch is copied to the GPU on a side stream as soon as the
// step before it has been enqueued (Prefetch), so the copy overlaps that step's compute;
// the compute stream waits for the copy's event, not the host. A batch's slot goes back to
// the loader when its Staged is dropped, after the step that used it has finished. On CUDA
// two slots are held during a step (this batch's and the next one's): a ring_depth of 3 or
// more lets the workers fill a third meanwhile.
#pragma once

#include <torch/torch.h>

#include <exception>
#include <memory>
#include <optional>

#include "loader/loader.h"

namespace cytonet::train {

// The networks' input: (grey / 255 − 0.5) / 0.25 as float, from uint8 images.
torch::Tensor NormaliseGrey(const torch::Tensor& uint8_images);

class DeviceInput {
 public:
  // channels_last: images in NHWC order, to match channels-last convolution weights.
  DeviceInput(Loader& loader, torch::Device device, bool channels_last = false);
  ~DeviceInput();

  struct Staged {
    std::shared_ptr<const Batch> batch;  // nullptr when the loader has ended
    torch::Tensor images;                // float [size, 1, patch, patch] on the device
  };
  // The next batch, ready for the current stream. Throws (c10::Error) on a loader error.
  Staged Next();
  // CUDA: takes the batch after the one Next() returned and starts its copy. Call it once
  // the step's work is enqueued. No-op on CPU.
  void Prefetch();
  // Seconds spent waiting for the loader since the last call (the step's data wait).
  double TakeWaitSeconds();

 private:
  std::shared_ptr<const Batch> NextFromLoader();
  torch::Tensor Normalise(torch::Tensor uint8_images, const Batch& batch) const;
  static torch::Tensor HostImages(const Batch& batch);

  Loader* loader_;
  torch::Device device_;
  bool channels_last_;
  double wait_seconds_ = 0;
  struct Copy;  // a batch on its way to the GPU
  std::unique_ptr<Copy> pending_;
  std::exception_ptr prefetch_error_;  // from Prefetch, thrown by the next Next()
};

}  // namespace cytonet::train
