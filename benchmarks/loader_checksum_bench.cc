// The loader's cost of the crc32c codec on every inner chunk, side by side in one run.
//
//   loader_checksum_bench STUDY.json SCRATCH [--size 1024 --level 1 --batches 24 --rounds 5 --threads 1]
//
// Ingests the study twice under SCRATCH (the ingest's settings, once with crc32c after blosc
// and once without: PyramidOptions::checksum, which only this benchmark turns off), indexes
// both, then draws the same batches (same seed, full augmentation) from a Loader on each,
// alternating which goes first each round, and checks that both give identical batches.
// Prints the median time per batch of each (whole loader runs) and their ratio.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "ingest/ingest_job.h"
#include "ingest/point_index.h"
#include "loader/loader.h"

namespace cytonet::bench {
namespace {

using Clock = std::chrono::steady_clock;

int Fail(const Status& st) {
  std::fprintf(stderr, "loader_checksum_bench: %s\n", st.ToString().c_str());
  return 1;
}

Result<std::shared_ptr<const PatchReader>> Prepare(const Study& study, const std::string& root, bool checksum,
                                                   double index_patch_px) {
  ASSIGN_OR_RETURN(auto kvstore, OpenFileKvStore(root, /*create=*/true));
  RETURN_IF_ERROR(PrepareDataset(*kvstore));
  IngestOptions options;
  options.pyramid.checksum = checksum;
  options.progress = false;
  for (const StudySection& section : study.sections) {
    const SectionOutcome outcome = IngestSection(kvstore, section, options);
    RETURN_IF_ERROR(outcome.error);
  }
  RETURN_IF_ERROR(FinalizeDataset(*kvstore, study));
  IndexOptions index;
  index.patch_size_px = index_patch_px;
  index.bad_points = BadPointPolicy::kDrop;
  IndexStats stats;
  ASSIGN_OR_RETURN(IndexTable table, BuildIndex(kvstore, study, index, &stats));
  RETURN_IF_ERROR(WriteIndex(kvstore, table, index, &stats));
  ASSIGN_OR_RETURN(auto reader, PatchReader::Open(kvstore, std::make_shared<StoreContext>()));
  return std::shared_ptr<const PatchReader>(std::move(reader));
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Run(const std::string& study_path, const std::string& scratch, int64_t size, int level, int batches, int rounds,
        int threads, const std::string& only) {
  auto study = ReadStudy(study_path);
  if (!study.ok()) return Fail(study.status());
  std::shared_ptr<const PatchReader> readers[2];
  for (int checked = 0; checked < 2; ++checked) {
    auto reader = Prepare(*study, scratch + (checked ? "/with-crc32c" : "/without"), checked, double(size << level));
    if (!reader.ok()) return Fail(reader.status());
    readers[checked] = *reader;
  }
  LoaderOptions options;
  options.sampler = {7, 8, 0, 1};
  options.level = level;
  options.patch_size = size;
  options.threads = threads;
  options.ring_depth = 2;
  // Whole-loader time (start to last batch): with worker threads running ahead, the time
  // of one Next() call measures waiting, not work.
  std::vector<double> seconds[2];
  for (int round = 0; round <= rounds; ++round) {  // round 0 warms the page cache
    std::vector<uint32_t> digests[2];
    for (int k = 0; k < 2; ++k) {
      const int a = (round + k) % 2;  // alternate who goes first
      if (only == (a ? "without" : "with")) continue;
      const auto t0 = Clock::now();
      auto loader = Loader::Start(readers[a], options);
      if (!loader.ok()) return Fail(loader.status());
      for (int b = 0; b < batches; ++b) {
        auto batch = (*loader)->Next();
        if (!batch.ok()) return Fail(batch.status());
        if (!*batch) return Fail(FailedPreconditionError("the index has fewer points than the batches need"));
        digests[a].push_back(Crc32c(ByteSpan((*batch)->images, size_t((*batch)->size * size * size))));
      }
      if (round > 0) seconds[a].push_back(std::chrono::duration<double>(Clock::now() - t0).count() / batches);
    }
    if (!only.empty()) continue;
    if (digests[0] != digests[1]) return Fail(InternalError("round " + std::to_string(round) + ": the batches differ"));
  }
  if (!only.empty()) {
    std::printf("ran only the loader %s crc32c (for instruction counts under callgrind)\n", only.c_str());
    return 0;
  }
  const double plain = Median(seconds[0]), checked = Median(seconds[1]);
  std::printf(
      "%d batches of 8 × %lld² (level %d, full augmentation) × %d rounds, %d thread(s), batches identical: yes\n",
      batches, (long long)size, level, rounds, threads);
  std::printf("median batch: without crc32c %.1f ms, with crc32c %.1f ms, cost %+.1f %%\n", plain * 1e3, checked * 1e3,
              100 * (checked / plain - 1));
  // Both loaders ran back to back in every round: the per-round ratio cancels the
  // machine's slow and fast phases.
  std::vector<double> costs;
  for (size_t r = 0; r < seconds[0].size(); ++r) costs.push_back(100 * (seconds[1][r] / seconds[0][r] - 1));
  std::sort(costs.begin(), costs.end());
  std::printf("cost per round: median %+.1f %%, min–max %+.1f … %+.1f %%\n", Median(costs), costs.front(),
              costs.back());
  return 0;
}

}  // namespace
}  // namespace cytonet::bench

int main(int argc, char** argv) {
  CLI::App app{"Loader cost of crc32c on inner chunks (with vs without, same study, one run)"};
  std::string study, scratch;
  int64_t size = 1024;
  int level = 1, batches = 24, rounds = 5, threads = 1;
  app.add_option("study", study, "study.json (e.g. from cytonet phantom)")->required();
  app.add_option("scratch", scratch, "Folder for the two datasets (reused when complete)")->required();
  app.add_option("--size", size, "Patch side in pixels of --level");
  app.add_option("--level", level);
  app.add_option("--batches", batches, "Batches of 8 per loader and round");
  app.add_option("--rounds", rounds);
  app.add_option("--threads", threads, "Loader worker threads");
  std::string only;
  app.add_option("--only", only, "Run one loader only (callgrind counts its instructions)")
      ->check(CLI::IsMember({"with", "without"}));
  CLI11_PARSE(app, argc, argv);
  return cytonet::bench::Run(study, scratch, size, level, batches, rounds, threads, only);
}
