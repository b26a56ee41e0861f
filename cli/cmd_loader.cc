// cytonet sample: a contact sheet of plain and augmented patches; cytonet bench-loader:
// patches/s, MB/s and per-stage times of the loader on a dataset.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cli/commands.h"
#include "cli/image_io.h"
#include "loader/loader.h"

namespace cytonet::cli {
namespace {

struct LoaderCli {
  std::string dataset;
  int level = 1;
  int64_t size = 512;
  uint64_t seed = 0;
  bool no_augment = false;
  int threads = 2;
};

void AddCommon(CLI::App* cmd, LoaderCli& o) {
  cmd->add_option("dataset", o.dataset, "Dataset root (ingested and indexed)")->required();
  cmd->add_option("--level", o.level, "Pyramid level (1 = 2 µm/px at 1 µm scans)")->capture_default_str();
  cmd->add_option("--size", o.size, "Patch side in pixels of the level")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the shuffle and the augmentations")->capture_default_str();
  cmd->add_flag("--no-augment", o.no_augment, "Plain crops");
  cmd->add_option("--threads", o.threads, "Loader worker threads")->capture_default_str();
}

// The options both commands share; the caller sets what differs.
LoaderOptions CommonLoaderOptions(const LoaderCli& o, int64_t batch_size) {
  LoaderOptions options;
  options.sampler = {o.seed, batch_size, 0, 1};
  options.level = o.level;
  options.patch_size = o.size;
  options.threads = o.threads;
  options.augmentation.enabled = !o.no_augment;
  return options;
}

Result<std::shared_ptr<const PatchReader>> OpenReader(const std::string& dataset) {
  ASSIGN_OR_RETURN(auto kvstore, OpenFileKvStore(dataset, /*create=*/false));
  ASSIGN_OR_RETURN(auto reader, PatchReader::Open(kvstore, std::make_shared<StoreContext>()));
  return std::shared_ptr<const PatchReader>(std::move(reader));
}

// Current and peak resident set size of this process (Linux /proc/self/status).
int64_t StatusKilobytes(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  int64_t kb = 0;
  const size_t n = std::strlen(field);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, field, n) == 0) kb = std::atoll(line + n);
  }
  std::fclose(f);
  return kb * 1024;
}
// Anonymous memory only: shards are read through mmap, and their file pages (page cache,
// shared and reclaimable) count in the resident set too.
int64_t AnonymousBytes() { return StatusKilobytes("RssAnon:"); }

}  // namespace

Command AddSampleCommand(CLI::App& app) {
  auto o = std::make_shared<LoaderCli>();
  auto out = std::make_shared<std::string>();
  auto count = std::make_shared<int>(12);
  auto* cmd = app.add_subcommand("sample", "Contact sheet PNG: each sampled patch plain (left) and augmented (right)");
  AddCommon(cmd, *o);
  cmd->add_option("--out", *out, "PNG to write")->required();
  cmd->add_option("--count", *count, "Patches on the sheet")->capture_default_str()->check(CLI::Range(1, 256));
  return {cmd, [o, out, count] {
            auto reader = OpenReader(o->dataset);
            if (!reader.ok()) return Fail(reader.status());
            LoaderOptions options = CommonLoaderOptions(*o, *count);
            options.ring_depth = 2;
            options.end_epoch = 1;
            auto loader = Loader::Start(*reader, options);
            if (!loader.ok()) return Fail(loader.status());
            auto batch = (*loader)->Next();
            if (!batch.ok()) return Fail(batch.status());
            if (!*batch) return Fail(FailedPreconditionError("sample: the index has fewer points than --count"));
            // Grid of pairs, 8 px gaps of black between cells, 2 px between plain and augmented.
            const int64_t s = o->size, n = *count,
                          columns = std::max<int64_t>(1, std::lround(std::sqrt(double(n) / 2)));
            const int64_t rows = (n + columns - 1) / columns, cell_w = 2 * s + 2, gap = 8;
            const int64_t width = columns * cell_w + (columns + 1) * gap, height = rows * s + (rows + 1) * gap;
            Bytes sheet(size_t(width * height), 0);
            std::vector<uint8_t> plain(size_t(s * s));
            for (int64_t i = 0; i < n; ++i) {
              const int64_t x0 = gap + (i % columns) * (cell_w + gap), y0 = gap + (i / columns) * (s + gap);
              const Batch& b = *batch.value();
              if (Status st = (*reader)->ReadRow(b.rows[size_t(i)], o->level, s, {}, plain.data()); !st.ok())
                return Fail(st);
              for (int64_t y = 0; y < s; ++y) {
                std::copy_n(&plain[size_t(y * s)], s, &sheet[size_t((y0 + y) * width + x0)]);
                std::copy_n(b.images + (i * s + y) * s, s, &sheet[size_t((y0 + y) * width + x0 + s + 2)]);
              }
            }
            batch.value().reset();
            if (Status st = WriteGreyImage(*out, sheet, height, width, 1); !st.ok()) return Fail(st);
            std::printf("sample: %lld patches of %lld² px at level %d (plain | augmented) in %s\n",
                        static_cast<long long>(n), static_cast<long long>(s), o->level, out->c_str());
            return 0;
          }};
}

Command AddBenchLoaderCommand(CLI::App& app) {
  auto o = std::make_shared<LoaderCli>();
  auto batches = std::make_shared<int64_t>(20);
  auto batch_size = std::make_shared<int64_t>(8);
  auto ring_depth = std::make_shared<int>(LoaderOptions().ring_depth);
  auto as_float = std::make_shared<bool>(false);
  auto on_device = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("bench-loader", "Loader throughput: patches/s, MB/s, time per stage, memory");
  AddCommon(cmd, *o);
  cmd->add_option("--batches", *batches, "Batches to time (after one warm-up batch)")->capture_default_str();
  cmd->add_option("--batch-size", *batch_size, "Patches per batch")->capture_default_str();
  cmd->add_option("--ring-depth", *ring_depth, "Batches in the ring")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--float", *as_float, "float32 output (grey / 255) instead of uint8");
  cmd->add_flag("--augment-on-device", *on_device,
                "Read source boxes and draw parameters only, as for augmentation on the GPU (cytonet train's "
                "augment_on_device)");
  return {
      cmd, [o, batches, batch_size, ring_depth, as_float, on_device] {
        auto reader = OpenReader(o->dataset);
        if (!reader.ok()) return Fail(reader.status());
        LoaderOptions options = CommonLoaderOptions(*o, *batch_size);
        options.ring_depth = *ring_depth;
        options.format = *as_float ? PixelFormat::kFloat32 : PixelFormat::kUint8;
        options.augment_on_device = *on_device;
        const int64_t anonymous_before = AnonymousBytes();
        int64_t anonymous_peak = anonymous_before;
        auto loader = Loader::Start(*reader, options);
        if (!loader.ok()) return Fail(loader.status());
        if (auto warm = (*loader)->Next(); !warm.ok()) return Fail(warm.status());
        const PatchStageTimes before = (*reader)->stage_times();
        const auto start = std::chrono::steady_clock::now();
        int64_t patches = 0;
        for (int64_t i = 0; i < *batches; ++i) {
          auto batch = (*loader)->Next();
          if (!batch.ok()) return Fail(batch.status());
          if (!*batch) break;
          patches += (*batch)->size;
          anonymous_peak = std::max(anonymous_peak, AnonymousBytes());
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const PatchStageTimes after = (*reader)->stage_times();
        const double n = double(after.patches - before.patches);
        auto per_patch_ms = [&](int64_t a, int64_t b) { return n > 0 ? double(b - a) / n / 1e6 : 0.0; };
        std::printf("bench-loader: %lld patches of %lld² px (level %d, %s) with %d threads in %.2f s\n",
                    static_cast<long long>(patches), static_cast<long long>(o->size), o->level,
                    *on_device      ? "source boxes; augmentation left to the device"
                    : o->no_augment ? "plain crops"
                                    : "full augmentation",
                    o->threads, seconds);
        std::printf("  %.1f patches/s, %.1f MB/s of output, %.1f patches/s per thread\n", double(patches) / seconds,
                    double(patches) * double(o->size * o->size) / seconds / 1e6,
                    double(patches) / seconds / o->threads);
        std::printf("  per patch (thread time): read %.2f ms, warp %.2f ms, gamma %.2f ms, filter %.2f ms\n",
                    per_patch_ms(before.read_ns, after.read_ns), per_patch_ms(before.warp_ns, after.warp_ns),
                    per_patch_ms(before.intensity_ns, after.intensity_ns),
                    per_patch_ms(before.filter_ns, after.filter_ns));
        // The loader's memory (peak of the anonymous resident memory it added, sampled
        // per batch) against the documented bound.
        std::printf(
            "  memory: %.1f MB added by the loader (anonymous, peak per batch); bound %.1f MB (Loader::MemoryBound)\n",
            double(anonymous_peak - anonymous_before) / 1e6, double(Loader::MemoryBound(options)) / 1e6);
        return 0;
      }};
}

}  // namespace cytonet::cli
