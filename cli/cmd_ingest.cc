// cytonet ingest: the sections of a study into a dataset (resumable; MPI when launched by
// mpirun/srun, see ingest/jobs.h).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "cli/commands.h"
#include "ingest/jobs.h"
#include "store/kvstore.h"
#include "store/kvstore_wrappers.h"

namespace cytonet::cli {
namespace {

// Exit status when the job ran but some sections failed.
constexpr int kSomeSectionsFailed = 3;

void PrintSummary(const std::vector<SectionOutcome>& outcomes, double seconds) {
  int counts[3] = {0, 0, 0};
  double pixels = 0, stored = 0;
  for (const SectionOutcome& o : outcomes) {
    ++counts[int(o.state)];
    pixels += double(o.pixels);
    stored += double(o.bytes_stored);
    std::printf("  %-24s %-8s %8.1f s", (o.brain + "/" + o.section).c_str(), SectionStateName(o.state), o.seconds);
    if (o.state == SectionState::kIngested) {
      std::printf(" %9.1f MB/s  %.1f MB stored", o.seconds > 0 ? double(o.pixels) / o.seconds / 1e6 : 0.0,
                  double(o.bytes_stored) / 1e6);
    }
    if (o.state == SectionState::kFailed) std::printf("  %s", o.error.ToString().c_str());
    std::printf("\n");
  }
  std::printf("ingest: %d ingested, %d skipped (already complete), %d failed; %.1f MP read, %.1f MB stored, %.1f s\n",
              counts[0], counts[1], counts[2], pixels / 1e6, stored / 1e6, seconds);
}

}  // namespace

Command AddIngestCommand(CLI::App& app) {
  struct Options {
    IngestOptions ingest;
    std::string study, out, codec = "blosc", cname = "lz4", shuffle = "noshuffle", format, report;
    int clevel = 5, threads = 0;
    int64_t blosc_blocksize = 65536;
    double pixel_size = 0;
    bool quiet = false, no_sync = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("ingest", "Ingest the sections of a study into OME-Zarr pyramids (resumable)");
  cmd->add_option("study", o->study, "Study file (study.json)")->required();
  cmd->add_option("--out", o->out, "Dataset root (created if missing)")->required();
  cmd->add_option("--shard", o->ingest.pyramid.shard_size, "Shard size (pixels per side)")->capture_default_str();
  cmd->add_option("--chunk", o->ingest.pyramid.chunk_size, "Inner chunk size (pixels per side)")->capture_default_str();
  cmd->add_option("--codec", o->codec, "Inner chunk compressor: blosc, or zstd (plain zstd frames)")
      ->capture_default_str()
      ->check(CLI::IsMember({"blosc", "zstd"}));
  cmd->add_option("--cname", o->cname, "blosc compressor: lz4, lz4hc, zstd, blosclz, zlib")->capture_default_str();
  cmd->add_option("--clevel", o->clevel, "blosc level 0-9, or the zstd level")
      ->capture_default_str()
      ->check(CLI::Range(0, 22));
  cmd->add_option("--shuffle", o->shuffle, "blosc shuffle: noshuffle, bitshuffle")->capture_default_str();
  cmd->add_option("--blosc-blocksize", o->blosc_blocksize,
                  "blosc block in bytes (0 = blosc's choice, 128 KB for lz4; it raises smaller ones to 64 KB): reads "
                  "decode whole blocks")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--format", o->format, "Slide reader for every section: auto, tiff, openslide, hdf5");
  cmd->add_option("--pixel-size", o->pixel_size, "Level-0 pixel size in µm (overrides study and files)");
  cmd->add_option("--min-levels", o->ingest.pyramid.min_levels, "At least this many levels")->capture_default_str();
  cmd->add_flag("--force", o->ingest.force, "Redo sections that are already complete");
  cmd->add_option("--report", o->report, "Write the per-section outcomes as JSON here");
  cmd->add_option("--threads", o->threads, "Worker threads (0 = all cores)");
  cmd->add_flag("--no-sync", o->no_sync, "Skip fsync (scratch data only: not crash-safe)");
  cmd->add_flag("--quiet", o->quiet, "No progress on stderr");
  return {cmd, [o] {
            LimitThreads(o->threads);
            const auto start = std::chrono::steady_clock::now();
            if (o->codec == "zstd") {
              o->ingest.pyramid.compressor = {{"name", "zstd"},
                                              {"configuration", {{"level", o->clevel}, {"checksum", false}}}};
            } else {
              o->ingest.pyramid.compressor = {{"name", "blosc"},
                                              {"configuration",
                                               {{"cname", o->cname},
                                                {"clevel", o->clevel},
                                                {"shuffle", o->shuffle},
                                                {"typesize", 1},
                                                {"blocksize", o->blosc_blocksize}}}};
            }
            if (!o->format.empty()) o->ingest.format = o->format;
            if (o->pixel_size > 0) o->ingest.pixel_size_um = o->pixel_size;
            o->ingest.progress = !o->quiet;
            auto study = ReadStudy(o->study);
            if (!study.ok()) return Fail(study.status());
            FileKvStoreOptions store_options;
            store_options.sync = !o->no_sync;
            auto kvstore = OpenFileKvStore(o->out, /*create=*/true, store_options);
            if (!kvstore.ok()) return Fail(kvstore.status());
            // For crash tests: a real kill -9 at a chosen write (tests/pipeline).
            if (const char* writes = std::getenv("CYTONET_TEST_KILL_BEFORE_WRITE")) {
              *kvstore = std::make_shared<KillBeforeWriteKvStore>(*kvstore, std::atoll(writes));
            }
            IngestJobResult result;
            const Status ran = RunIngestJob(*kvstore, o->out, *study, o->ingest, &result);
            if (result.rank != 0) return ran.ok() ? (result.failed_sections ? kSomeSectionsFailed : 0) : 1;
            if (!ran.ok()) return Fail(ran);
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            PrintSummary(result.outcomes, seconds);
            if (result.ranks > 1) std::printf("ingest: %d MPI ranks\n", result.ranks);
            if (!o->report.empty()) {
              Json report = Json::array();
              for (const SectionOutcome& outcome : result.outcomes) report.push_back(outcome.ToJson());
              std::ofstream(o->report) << report.dump(1, ' ', false, Json::error_handler_t::replace) << "\n";
            }
            std::fflush(stdout);
            return result.failed_sections ? kSomeSectionsFailed : 0;
          }};
}

}  // namespace cytonet::cli
