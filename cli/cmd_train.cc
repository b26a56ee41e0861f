// cytonet train: runs the cytonet-train program beside this one (cli/train_main.cc) with
// the same arguments. It is separate because it links LibTorch, whose start-up every
// other command would otherwise pay.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace cytonet::cli {

Command AddTrainCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Pretrain CytoNet from a configuration (--config FILE; see docs/train.md)");
  // Everything after `train`, --help included, goes to cytonet-train unparsed.
  cmd->prefix_command();
  cmd->set_help_flag();
  return {cmd, [cmd] {
            char self[PATH_MAX] = {};
            const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
            std::string program = n > 0 ? std::string(self, size_t(n)) : std::string("cytonet");
            program = program.substr(0, program.rfind('/') + 1) + "cytonet-train";
            std::vector<std::string> args = {program};
            for (const auto& arg : cmd->remaining()) args.push_back(arg);
            std::vector<char*> argv;
            for (auto& arg : args) argv.push_back(arg.data());
            argv.push_back(nullptr);
            ::execv(program.c_str(), argv.data());
            return Fail(NotFoundError("cannot run " + program + " (" + std::strerror(errno) +
                                      "): this build has no training (LibTorch was not found)"));
          }};
}

}  // namespace cytonet::cli
