// Subcommands of the cytonet tool. Each Add*Command registers its options on `app` and
// returns the function that runs it once parsed; no logic of its own lives in cli/.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "store/status.h"

namespace cytonet::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command AddPhantomCommand(CLI::App& app);
Command AddIngestCommand(CLI::App& app);
Command AddIndexCommand(CLI::App& app);
Command AddQueryCommand(CLI::App& app);
Command AddVerifyCommand(CLI::App& app);
Command AddSampleCommand(CLI::App& app);
Command AddBenchLoaderCommand(CLI::App& app);
Command AddTrainCommand(CLI::App& app);    // runs cytonet-train
Command AddExtractCommand(CLI::App& app);  // runs cytonet-extract
Command AddReportCommand(CLI::App& app);   // runs cytonet-report

// Prints "cytonet: <status>" and returns the exit code for it (2 for bad arguments).
int Fail(const Status& status);
// Limits TBB to `threads` workers for the life of the process (0 = all cores).
void LimitThreads(int threads);

}  // namespace cytonet::cli
