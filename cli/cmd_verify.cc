// cytonet verify: checks a dataset section by section.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "ingest/verify.h"
#include "store/kvstore.h"

namespace cytonet::cli {

Command AddVerifyCommand(CLI::App& app) {
  struct Options {
    std::string dataset;
    VerifyOptions verify;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("verify", "Check metadata, shard indexes and checksums (and decode with --decode)");
  cmd->add_option("dataset", o->dataset, "Dataset root")->required();
  cmd->add_flag("--decode", o->verify.decode, "Decode every stored chunk too");
  return {cmd, [o] {
            auto kvstore = OpenFileKvStore(o->dataset, /*create=*/false);
            if (!kvstore.ok()) return Fail(kvstore.status());
            auto report = VerifyDataset(*kvstore, o->verify, [](const SectionReport& s) {
              std::printf("  %-24s %-8s %6lld shards %8lld chunks %10.1f MB\n", (s.brain + "/" + s.section).c_str(),
                          s.ok() ? "ok" : "DAMAGED", static_cast<long long>(s.shards), static_cast<long long>(s.chunks),
                          double(s.bytes) / 1e6);
              for (const std::string& problem : s.problems) std::printf("      %s\n", problem.c_str());
            });
            if (!report.ok()) return Fail(report.status());
            for (const std::string& problem : report->dataset_problems) std::printf("  dataset: %s\n", problem.c_str());
            int bad = 0;
            for (const auto& s : report->sections) bad += !s.ok();
            std::printf("verify: %zu sections, %d damaged or incomplete, %zu dataset problems%s\n",
                        report->sections.size(), bad, report->dataset_problems.size(),
                        o->verify.decode ? " (every chunk decoded)" : "");
            return report->ok() ? 0 : 3;
          }};
}

}  // namespace cytonet::cli
