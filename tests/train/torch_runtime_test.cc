// LibTorch is found through the torch wheel, links, and computes on the CPU.
#include "train/torch_runtime.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace cytonet::train {
namespace {

TEST(TorchRuntime, LinksTheWheelsLibTorch) {
  TorchRuntime runtime = DescribeTorchRuntime();
  EXPECT_EQ(runtime.torch_version.rfind("2.", 0), 0u) << runtime.torch_version;
  if (!runtime.cuda_available) {
    EXPECT_EQ(runtime.cuda_device_count, 0);
  }
  torch::Tensor a = torch::tensor({{1.0, 2.0}, {3.0, 4.0}});
  torch::Tensor product = torch::matmul(a, a);
  EXPECT_DOUBLE_EQ(product[1][0].item<double>(), 15.0);  // 3·1 + 4·3
}

}  // namespace
}  // namespace cytonet::train
