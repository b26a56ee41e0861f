// The configuration of a pretraining run (`cytonet train --config FILE`), read from JSON or YAML.
// No LibTorch here: the CLI includes this header. Every key is documented in
// docs/train.md and described by schemas/train.schema.json; an unknown key, a value of the
// wrong type or out of range is an InvalidArgument naming the key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/json.h"
#include "store/status.h"

namespace cytonet::train {

struct TrainConfig {
  // Data
  std::string dataset;        // dataset root (ingested and indexed)
  std::string run_dir;        // checkpoints, metrics.jsonl, weights.pt
  int level = 1;              // pyramid level of the patches (1: 2 µm/px)
  int64_t patch_size = 2048;  // px at `level`
  // Train on these only (empty: all): brain names, and "brain/section" names — for
  // example to hold sections out of pretraining for a probe.
  std::vector<std::string> brains, sections;
  bool augment = true;  // the paper's augmentations (§3.4)
  // The warp, intensity and filter run on the training device (train/device_augmentation.h);
  // the loader's threads only read source boxes.
  bool augment_on_device = false;
  int loader_threads = 2;
  int ring_depth = 3;
  // Model and loss
  std::string model = "resnet50";    // "resnet50" | "small" | "r50_vit" | "small_vit"
  std::string loss = "spatial_nce";  // "spatial_nce" | "supcon" | "nt_xent" (needs views = 2)
  int views = 1;                     // augmented views per point (the loader's `views`)
  double temperature = 0.07;
  double sigma_mm = 10.0;  // SpatialNCE's σ
  int64_t projection_dim = 256;
  // Convolution weights and inputs in NHWC (channels-last) memory order: oneDNN's and
  // cuDNN's fast path (on 2 CPU cores, 1.3× the small ResNet's step); the values are the same.
  bool channels_last = true;
  // "fp32" | "bf16" (autocast) | "fp16" (autocast and a dynamic loss scale); the losses stay
  // fp32 (train/mixed_precision.h).
  std::string precision = "fp32";
  // Recompute each ResNet stage's and ViT block's activations in the backward pass instead
  // of keeping them: less memory for one more forward pass; the same gradients.
  bool gradient_checkpointing = false;
  // Optimisation
  int64_t batch_size = 32;            // of all ranks together; each rank takes batch_size / ranks
  int64_t steps = 1000;               // optimiser steps of the whole run
  double base_lr = 0.01;              // lr = base_lr × batch_size / 256
  std::string schedule = "constant";  // "constant" | "cosine" (after the warm-up)
  int64_t warmup_steps = 0;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  double trust_coefficient = 0.02;
  bool lars_clip = true;
  bool adapt_bias_and_norm = false;
  // Run
  uint64_t seed = 0;
  int torch_threads = 0;           // 0: LibTorch's default
  std::string device = "cpu";      // "cpu" | "cuda"
  int64_t checkpoint_every = 100;  // steps
  int keep_last = 3;               // checkpoints kept
  int64_t log_every = 1;           // steps between progress lines
  // Many ranks (mpirun/srun, see train/distributed.h): a collective that has not completed
  // after this long fails on every rank, so a dead or stuck rank cannot hang the others.
  double collective_timeout_s = 600;
};

// Reads a config object; InvalidArgument naming `where` and the key on any problem.
Result<TrainConfig> ParseTrainConfig(const Json& json, const std::string& where);
// A file whose name ends in .yaml or .yml is YAML (plain scalars typed as in YAML 1.2's
// core schema, quoted ones strings), anything else JSON.
Result<TrainConfig> ReadTrainConfig(const std::string& path);
// YAML text as JSON; InvalidArgument with `where`:line:column on a syntax error.
Result<Json> ParseYamlConfig(const std::string& text, const std::string& where);

// The JSON Schema of the configuration, generated from the same table the parser uses;
// schemas/train.schema.json is its output (a test keeps the two equal).
Json TrainConfigSchema();

// The config as JSON (every key, defaults included): stored in checkpoints and compared on
// resume.
Json TrainConfigToJson(const TrainConfig& config);

}  // namespace cytonet::train
