// The read-speed cost of the crc32c codec on every inner chunk, side by side in one run.
//
//   checksum_cost_bench SCRATCH [--size 8192 --side 2048 --regions 40 --rounds 10 --threads 1]
//
// Writes the same synthetic section twice under SCRATCH, with the ingest's inner codecs
// [bytes, blosc(lz4, 64 KB blocks)] and with [bytes, blosc, crc32c], then reads the same
// unaligned side × side regions from both, alternating which goes first, and checks that
// both give the same pixels. Prints the median region time of each and the median of the
// per-region paired ratios (the robust estimate on a busy machine).
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "benchmarks/synthetic_section.h"

namespace cytonet::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Run(const std::string& scratch, SectionSpec spec, int64_t side, int regions, int rounds, int threads) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  auto kv = OpenFileKvStore(scratch, true);
  if (!kv.ok()) return std::fprintf(stderr, "%s\n", kv.status().ToString().c_str()), 1;
  std::shared_ptr<ZarrArray> arrays[2];
  for (int checked = 0; checked < 2; ++checked) {
    spec.checksum = checked;
    const std::string path = checked ? "with-crc32c" : "without";
    auto array = ZarrArray::Open(*kv, path, std::make_shared<StoreContext>());
    if (!array.ok() ||
        (*array)->metadata().attributes.value("synthetic_section", Json()).value("size", 0) != spec.size) {
      array = WriteSyntheticSection(*kv, path, spec, std::make_shared<StoreContext>());
    }
    if (!array.ok()) return std::fprintf(stderr, "%s\n", array.status().ToString().c_str()), 1;
    arrays[checked] = *array;
  }
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> origin(0, spec.size - side);
  std::vector<Box> boxes;
  for (int i = 0; i < regions; ++i) boxes.push_back(Box{{origin(rng), origin(rng)}, {side, side}});
  Bytes out[2] = {Bytes(size_t(side * side)), Bytes(size_t(side * side))};
  for (const Box& box : boxes) {  // warm the page cache for both
    for (int a = 0; a < 2; ++a) {
      if (Status st = arrays[a]->Read(box, out[a]); !st.ok())
        return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    }
  }
  std::vector<double> seconds[2];
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < boxes.size(); ++i) {
      const int first = int((i + size_t(round)) % 2);  // alternate who reads first
      for (int k = 0; k < 2; ++k) {
        const int a = (first + k) % 2;
        const auto t0 = Clock::now();
        if (Status st = arrays[a]->Read(boxes[i], out[a]); !st.ok())
          return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
        seconds[a].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      if (std::memcmp(out[0].data(), out[1].data(), out[0].size()) != 0) {
        std::fprintf(stderr, "region %zu differs between the two arrays\n", i);
        return 1;
      }
    }
  }
  // Each region is read by both arrays back to back, so the per-pair ratio cancels what the
  // machine was doing at that moment; its median is the estimate, the quartiles its spread.
  std::vector<double> pair_ratios;
  for (size_t i = 0; i < seconds[0].size(); ++i) pair_ratios.push_back(seconds[1][i] / seconds[0][i]);
  std::sort(pair_ratios.begin(), pair_ratios.end());
  const auto quantile = [&](double q) { return pair_ratios[size_t(q * double(pair_ratios.size() - 1))]; };
  const double plain = Median(seconds[0]), checked = Median(seconds[1]);
  std::printf("%d regions of %lld² × %d rounds, %d thread(s), pixels identical: yes\n", regions, (long long)side,
              rounds, threads);
  std::printf("median region read: without crc32c %.2f ms, with crc32c %.2f ms\n", plain * 1e3, checked * 1e3);
  std::printf("paired cost: median %+.1f %% (quartiles %+.1f %% … %+.1f %%)\n", 100 * (quantile(0.5) - 1),
              100 * (quantile(0.25) - 1), 100 * (quantile(0.75) - 1));
  return 0;
}

}  // namespace
}  // namespace cytonet::bench

int main(int argc, char** argv) {
  CLI::App app{"Read-speed cost of crc32c on inner chunks (with vs without, same data, one run)"};
  std::string scratch;
  cytonet::bench::SectionSpec spec;
  spec.size = 8192;
  spec.shard = 4096;
  spec.blocksize = 65536;
  int64_t side = 2048;
  int regions = 40, rounds = 10, threads = 1;
  app.add_option("scratch", scratch)->required();
  app.add_option("--size", spec.size);
  app.add_option("--side", side);
  app.add_option("--regions", regions);
  app.add_option("--rounds", rounds);
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  return cytonet::bench::Run(scratch, spec, side, regions, rounds, threads);
}
