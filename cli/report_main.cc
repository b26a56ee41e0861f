// cytonet-report: the evaluation report (train/report.h) of a pretrained network against a
// randomly initialised one and baselines. A program of its own because it links LibTorch;
// `cytonet report` runs it.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "train/report.h"

namespace {

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0; start < text.size();) {
    const size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cytonet;
  CLI::App app{
      "Evaluate a pretrained network: area probes, layer segmentation, regression, clustering; "
      "writes DIR/report.md, DIR/report.json and plots (docs/eval.md)",
      "cytonet report"};
  train::ReportOptions o;
  std::string seen, transfer, unseen;
  app.add_option("--dataset", o.dataset, "Dataset root (ingested and indexed, with area labels)")->required();
  app.add_option("--checkpoint", o.checkpoint, "Run folder or checkpoint file of the pretrained network")->required();
  app.add_option("--out", o.out, "Report folder")->required();
  app.add_option("--masks", o.masks, "Layer masks: DIR/<brain>/<section>/<point id>.tif (omit: no segmentation)");
  app.add_option("--areas", o.areas, "Atlas JSON: area names, laminar properties, adjacency (phantom's areas.json)");
  app.add_option("--seen", seen, "Seen brains, comma-separated (default: the pretraining's but the last by name)");
  app.add_option("--transfer", transfer, "Transfer brains (default: the pretraining's last by name)");
  app.add_option("--unseen", unseen, "Unseen brains (default: all the others)");
  app.add_option("--test-every", o.test_every, "Every n-th section of a seen brain is a test section")
      ->capture_default_str();
  app.add_option("--feature-prefix", o.feature_prefix, "Feature sets: features/<prefix>-pretrained, -random-init")
      ->capture_default_str();
  app.add_flag("--overwrite-features", o.overwrite_features,
               "Replace feature sets of that prefix that were extracted otherwise (another checkpoint, index, ...)");
  app.add_option("--fine-tune-epochs", o.fine_tune_epochs,
                 "Also fine-tune the area probe (backbone and classifier) for this many epochs, from the pretrained "
                 "weights and from scratch (0: linear probe only)")
      ->capture_default_str();
  app.add_option("--fine-tune-batch", o.fine_tune_batch, "Fine-tuning batch size")->capture_default_str();
  app.add_option("--fine-tune-lr", o.fine_tune_lr, "Fine-tuning base learning rate, scaled by batch / 256")
      ->capture_default_str();
  app.add_option("--device", o.device, "Where fine-tuning trains: cpu, cuda, cuda:N")->capture_default_str();
  app.add_option("--seed", o.seed, "Random init, resampling, folds and k-means")->capture_default_str();
  app.add_option("--threads", o.threads, "Threads (default: all cores)");
  CLI11_PARSE(app, argc, argv);
  o.seen = SplitList(seen), o.transfer = SplitList(transfer), o.unseen = SplitList(unseen);
  auto report =
      train::RunReport(o, [](const std::string& line) { std::fprintf(stderr, "[report] %s\n", line.c_str()); });
  if (!report.ok()) {
    std::fprintf(stderr, "cytonet report: %s\n", report.status().ToString().c_str());
    return report.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::printf("report: %s/report.md (tables), %s/report.json (every number), plots in %s\n", o.out.c_str(),
              o.out.c_str(), o.out.c_str());
  return 0;
}
