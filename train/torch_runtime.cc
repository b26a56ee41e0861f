#include "train/torch_runtime.h"

#include <torch/torch.h>
#include <torch/version.h>

namespace cytonet::train {

TorchRuntime DescribeTorchRuntime() {
  TorchRuntime runtime;
  runtime.torch_version = TORCH_VERSION;
  runtime.cuda_available = torch::cuda::is_available();
  runtime.cuda_device_count = runtime.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
  return runtime;
}

}  // namespace cytonet::train
