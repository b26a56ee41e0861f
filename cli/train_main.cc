// cytonet-train: pretraining from a configuration file (train/config.h, docs/train.md).
// A program of its own because it links LibTorch, whose start-up (about half a second of
// loading CUDA and torch libraries) every other command should not pay; `cytonet train`
// runs it.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "train/trainer.h"

namespace cytonet {
namespace {

int Fail(const Status& status) {
  std::fprintf(stderr, "cytonet train: %s\n", status.ToString().c_str());
  return status.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace
}  // namespace cytonet

int main(int argc, char** argv) {
  using namespace cytonet;
  CLI::App app{"Pretrain CytoNet (SpatialNCE, LARS) from a JSON configuration", "cytonet train"};
  std::string config_path;
  int64_t steps_override = 0;
  bool print_schema = false, check_only = false;
  auto* config_option = app.add_option("--config", config_path, "Training configuration (JSON, see docs/train.md)");
  app.add_option("--steps", steps_override, "Override the configuration's total steps")->check(CLI::PositiveNumber);
  app.add_flag("--check", check_only, "Only validate the configuration");
  app.add_flag("--print-schema", print_schema, "Print the configuration's JSON Schema and exit")
      ->excludes(config_option);
  CLI11_PARSE(app, argc, argv);
  if (print_schema) {
    std::fputs(train::TrainConfigSchema().dump(2).c_str(), stdout);
    std::fputs("\n", stdout);
    return 0;
  }
  if (config_path.empty()) return Fail(InvalidArgumentError("--config is required"));
  auto config = train::ReadTrainConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  if (steps_override > 0) config->steps = steps_override;
  if (check_only) {
    std::printf("%s: valid\n", config_path.c_str());
    return 0;
  }
  train::TrainCallbacks callbacks;
  const int64_t total = config->steps;
  callbacks.step = [total](const train::StepReport& r) {
    std::printf("step %lld/%lld  epoch %u  loss %.4f  lr %.5f  %.1f patches/s  data wait %.0f %%\n",
                static_cast<long long>(r.step), static_cast<long long>(total), r.epoch, r.loss, r.learning_rate,
                r.patches_per_second, 100 * r.data_wait_fraction);
    std::fflush(stdout);
  };
  callbacks.notice = [](const std::string& text) { std::fprintf(stderr, "cytonet train: %s\n", text.c_str()); };
  auto outcome = train::RunTraining(*config, callbacks);
  if (!outcome.ok()) return Fail(outcome.status());
  if (outcome->preempted) {
    std::printf("preempted at step %lld; resume with the same command (exit code %d)\n",
                static_cast<long long>(outcome->steps_done), train::kPreemptedExitCode);
    return train::kPreemptedExitCode;
  }
  if (outcome->rank != 0) {
    std::printf("finished %lld steps on rank %d of %d\n", static_cast<long long>(outcome->steps_done), outcome->rank,
                outcome->ranks);
    return 0;
  }
  std::printf("finished %lld steps; weights in %s, metrics in %s/metrics.jsonl\n",
              static_cast<long long>(outcome->steps_done), outcome->weights.c_str(), config->run_dir.c_str());
  return 0;
}
