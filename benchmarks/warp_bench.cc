// The loader's warp (loader/warp.h) against cv::warpAffine + cv::LUT, the operations it
// replaces, on the same source and maps, interleaved, one thread:
//
//   build/benchmarks/warp_bench [--size 2048] [--repeats 5]
//
// Prints ns per output pixel for each rotation and the ratio, then the median ratio.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <vector>

#include "loader/warp.h"

int main(int argc, char** argv) {
  CLI::App app{"loader warp vs cv::warpAffine + cv::LUT"};
  int size = 2048, repeats = 5;
  app.add_option("--size", size, "Output side in pixels")->capture_default_str();
  app.add_option("--repeats", repeats, "Timed warps per rotation and side")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  using namespace cytonet;
  RunImageOperationsSingleThreaded();
  std::printf("warp of %d² px, gamma table on, one thread; fast path %s\n", size,
              WarpHasFastPath() ? "AVX2" : "absent");
  std::printf("%8s %14s %14s %7s\n", "θ", "ours ns/px", "OpenCV ns/px", "ratio");

  const double h = (size - 1) / 2.0;
  const int side = int(std::ceil(std::sqrt(2.0) * size)) + 3;
  std::vector<uint8_t> source(size_t(side) * size_t(side) + kWarpSourcePadding);
  std::mt19937 random(1);
  for (auto& v : source) v = uint8_t(random() % 200 + 30);
  std::array<uint8_t, 256> gamma;
  for (int v = 0; v < 256; ++v) gamma[size_t(v)] = uint8_t(std::lround(255 * std::pow(v / 255.0, 0.9)));
  std::vector<uint8_t> out(size_t(size) * size_t(size));
  std::vector<double> ratios;
  for (double theta = -std::numbers::pi + 0.1; theta < std::numbers::pi; theta += std::numbers::pi / 8) {
    const double c = std::cos(theta), s = std::sin(theta), reach = h * (std::abs(c) + std::abs(s));
    const int width = int(std::ceil(2 * reach)) + 3;  // the box the loader would read
    const std::array<double, 6> map = {c, -s, width / 2.0 - (c - s) * h, s, c, width / 2.0 - (s + c) * h};
    const GreyView view{source.data(), width, width, width};
    double seconds[2] = {0, 0};
    for (int r = 0; r < repeats; ++r) {
      for (int which = 0; which < 2; ++which) {  // interleaved: the machine's noise hits both
        const auto start = std::chrono::steady_clock::now();
        (which == 0 ? WarpAffineBilinear : WarpAffineBilinearOpenCV)(view, map, 255, &gamma, size, out.data());
        seconds[which] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
    }
    const double pixels = double(size) * size * repeats;
    std::printf("%8.2f %14.2f %14.2f %6.2f×\n", theta, seconds[0] / pixels * 1e9, seconds[1] / pixels * 1e9,
                seconds[1] / seconds[0]);
    ratios.push_back(seconds[1] / seconds[0]);
  }
  std::sort(ratios.begin(), ratios.end());
  std::printf("median ratio (OpenCV time / ours): %.2f× (min–max over the rotations %.2f–%.2f×)\n",
              ratios[ratios.size() / 2], ratios.front(), ratios.back());
  return 0;
}
