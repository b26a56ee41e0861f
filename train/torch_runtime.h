// What LibTorch this build links and which devices it sees. train/ is the only module
// that includes LibTorch headers; everything else builds without it.
#pragma once

#include <string>

namespace cytonet::train {

struct TorchRuntime {
  std::string torch_version;  // e.g. "2.11.0"
  bool cuda_available = false;
  int cuda_device_count = 0;
};

TorchRuntime DescribeTorchRuntime();

}  // namespace cytonet::train
