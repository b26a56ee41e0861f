// cytonet train: pretraining from a configuration file (train/config.h, docs/train.md).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "train/trainer.h"

namespace cytonet::cli {

Command AddTrainCommand(CLI::App& app) {
  auto config_path = std::make_shared<std::string>();
  auto steps = std::make_shared<int64_t>(0);
  auto* cmd = app.add_subcommand("train", "Pretrain CytoNet (SpatialNCE, LARS) from a JSON configuration");
  cmd->add_option("--config", *config_path, "Training configuration (JSON, see docs/train.md)")->required();
  cmd->add_option("--steps", *steps, "Override the configuration's total steps")->check(CLI::PositiveNumber);
  return {cmd, [config_path, steps] {
            auto config = train::ReadTrainConfig(*config_path);
            if (!config.ok()) return Fail(config.status());
            if (*steps > 0) config->steps = *steps;
            train::TrainCallbacks callbacks;
            const int64_t total = config->steps;
            callbacks.step = [total](const train::StepReport& r) {
              std::printf("step %lld/%lld  epoch %u  loss %.4f  lr %.5f  %.1f patches/s  data wait %.0f %%\n",
                          static_cast<long long>(r.step), static_cast<long long>(total), r.epoch, r.loss,
                          r.learning_rate, r.patches_per_second, 100 * r.data_wait_fraction);
              std::fflush(stdout);
            };
            callbacks.notice = [](const std::string& text) {
              std::fprintf(stderr, "cytonet train: %s\n", text.c_str());
            };
            auto outcome = train::RunTraining(*config, callbacks);
            if (!outcome.ok()) return Fail(outcome.status());
            if (outcome->preempted) {
              std::printf("preempted at step %lld; resume with the same command (exit code %d)\n",
                          static_cast<long long>(outcome->steps_done), train::kPreemptedExitCode);
              return train::kPreemptedExitCode;
            }
            std::printf("finished %lld steps; weights in %s, metrics in %s/metrics.jsonl\n",
                        static_cast<long long>(outcome->steps_done), outcome->weights.c_str(), config->run_dir.c_str());
            return 0;
          }};
}

}  // namespace cytonet::cli
