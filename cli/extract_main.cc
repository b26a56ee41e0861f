// cytonet-extract: a network's features for the index rows into features/<name>
// (train/feature_extraction.h). A program of its own because it links LibTorch; `cytonet
// extract` runs it. Under mpirun or srun every rank takes its share of the chunks.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "train/feature_extraction.h"

int main(int argc, char** argv) {
  using namespace cytonet;
  CLI::App app{"Extract a network's features for the dataset's index rows into features/<name>", "cytonet extract"};
  train::ExtractOptions o;
  std::string sections;
  bool quiet = false;
  app.add_option("--dataset", o.dataset, "Dataset root")->required();
  app.add_option("--checkpoint", o.checkpoint,
                 "A checkpoint file, or a run folder (its newest good checkpoint); omit for random init");
  app.add_option("--name", o.name, "Feature set name: the array is features/<name>")->required();
  app.add_option("--model", o.model, "Network, random init only (a checkpoint names its own)")
      ->check(CLI::IsMember({"small", "resnet50", "r50_vit", "small_vit"}));
  app.add_option("--seed", o.seed, "Seed of the random initialisation");
  app.add_flag("--random-init", o.random_init,
               "With --checkpoint: its network (model, level, patch size), randomly initialised from --seed");
  app.add_option("--level", o.level, "Pyramid level of the patches (default: the checkpoint's)");
  app.add_option("--patch-size", o.patch_size, "Patch side in pixels (default: the checkpoint's)");
  app.add_flag("--projection", o.projection, "The projection head's output instead of the backbone's features");
  app.add_option("--sections", sections, "Only these sections' rows, brain/section comma-separated (others: NaN)");
  app.add_option("--batch-size", o.batch_size, "Patches per forward pass")->check(CLI::PositiveNumber);
  app.add_option("--chunk-rows", o.chunk_rows, "Rows per stored chunk (the unit of work and of resume)")
      ->check(CLI::PositiveNumber);
  app.add_option("--shard-rows", o.shard_rows, "Rows per shard file (a multiple of --chunk-rows; default ≤ 2 GiB)");
  app.add_option("--threads", o.reader_threads, "Patch-reading threads (default: all cores)");
  app.add_option("--torch-threads", o.torch_threads, "LibTorch's threads (default: its own)");
  app.add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_flag("--overwrite", o.overwrite,
               "Replace a features/<name> (or an unfinished extraction of it) made otherwise");
  app.add_flag("--quiet", quiet, "No progress lines");
  CLI11_PARSE(app, argc, argv);
  for (size_t start = 0; start < sections.size();) {
    const size_t comma = std::min(sections.find(',', start), sections.size());
    if (comma > start) o.sections.push_back(sections.substr(start, comma - start));
    start = comma + 1;
  }
  int64_t last_percent = -1;
  auto progress = [&](const train::ExtractProgress& p) {
    const int64_t percent = 100 * p.chunks_done / std::max<int64_t>(1, p.chunks_total);
    if (quiet || percent == last_percent) return;
    last_percent = percent;
    std::fprintf(stderr, "\r[extract] %3lld %%  chunk %lld/%lld  %.0f rows/s on rank 0", (long long)percent,
                 (long long)p.chunks_done, (long long)p.chunks_total, p.rows_computed / std::max(1e-9, p.seconds));
    if (p.chunks_done >= p.chunks_total) std::fputc('\n', stderr);
  };
  auto outcome = train::RunExtraction(o, progress);
  if (!outcome.ok()) {
    std::fprintf(stderr, "cytonet extract: %s\n", outcome.status().ToString().c_str());
    return outcome.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (outcome->rank != 0) return 0;
  if (outcome->already_complete) {
    std::printf("%s/%s is already complete (same provenance): nothing to do\n", o.dataset.c_str(),
                outcome->path.c_str());
  } else {
    std::printf("%s/%s: float32 [%lld, %lld] on %d rank(s); rank 0 computed %lld chunks, kept %lld\n",
                o.dataset.c_str(), outcome->path.c_str(), (long long)outcome->rows, (long long)outcome->dims,
                outcome->ranks, (long long)outcome->chunks_computed, (long long)outcome->chunks_kept);
  }
  return 0;
}
