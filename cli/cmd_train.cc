// The commands that need LibTorch (train, extract) run a program of their own beside this
// one (cli/train_main.cc, cli/extract_main.cc) with the same arguments: LibTorch's start-up
// would otherwise slow every other command.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace cytonet::cli {

namespace {

// `cytonet <name> ARGS...` runs `<program> ARGS...`, --help included, unparsed.
Command AddTorchProgramCommand(CLI::App& app, const std::string& name, const std::string& program_name,
                               const std::string& description) {
  auto* cmd = app.add_subcommand(name, description);
  cmd->prefix_command();
  cmd->set_help_flag();
  return {cmd, [cmd, program_name] {
            char self[PATH_MAX] = {};
            const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
            std::string program = n > 0 ? std::string(self, size_t(n)) : std::string("cytonet");
            program = program.substr(0, program.rfind('/') + 1) + program_name;
            std::vector<std::string> args = {program};
            for (const auto& arg : cmd->remaining()) args.push_back(arg);
            std::vector<char*> argv;
            for (auto& arg : args) argv.push_back(arg.data());
            argv.push_back(nullptr);
            ::execv(program.c_str(), argv.data());
            return Fail(NotFoundError("cannot run " + program + " (" + std::strerror(errno) +
                                      "): this build has no LibTorch (it was not found)"));
          }};
}

}  // namespace

Command AddTrainCommand(CLI::App& app) {
  return AddTorchProgramCommand(app, "train", "cytonet-train",
                                "Pretrain CytoNet from a configuration (--config FILE; see docs/train.md)");
}

Command AddReportCommand(CLI::App& app) {
  return AddTorchProgramCommand(
      app, "report", "cytonet-report",
      "Evaluate a pretrained network: probes, segmentation, regression, plots (docs/eval.md)");
}

Command AddExtractCommand(CLI::App& app) {
  return AddTorchProgramCommand(app, "extract", "cytonet-extract",
                                "Extract a network's features for the index rows into features/<name> (docs/eval.md)");
}

}  // namespace cytonet::cli
