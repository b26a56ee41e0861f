// The evaluation report (paper §1.3, §3.5–3.8 in miniature): a pretrained network against
// a randomly initialised one of the same architecture and against hand-made baselines, on
// a dataset with area labels (and, for layer segmentation, layer masks).
//
//   1. Features: `cytonet extract` of both networks into features/<prefix>-pretrained and
//      features/<prefix>-random-init (kept when already there, so a cluster job can extract
//      first on many ranks); hand-made features of the same patches: intensity (mean,
//      spread, a 16-bin histogram and a 16-ring radial profile) and texture (those, the
//      radially averaged log power spectrum and Sobel gradient statistics); MNI position
//      (|x|, y, z).
//   2. Area probe: a linear classifier (softmax regression, L2 as scikit-learn's C = 1,
//      L-BFGS) on standardised frozen features, trained on the seen brains' training
//      sections (classes balanced by stratified resampling, seeded) and tested on the seen
//      brains' test sections (every `test_every`-th section: never a section it trained on,
//      since neighbouring patches overlap), on the transfer brains (pretrained on, never
//      probe-trained) and on the unseen brains (neither). Each feature set is scored as it
//      is and with every feature standardised per section. Macro-F1 (over the labels of
//      truth and prediction), top-1, top-3; the pretrained network's confusion matrix,
//      error hop distances in the area adjacency graph and logit margins by hop.
//      Optionally fine-tuned (train/fine_tune.h): the backbone and a linear classifier
//      trained together on the same points, from the pretrained weights and from the
//      random initialisation (training from scratch), scored on the same splits.
//   3. Layer segmentation: a pixel-wise 1 × 1 convolution (softmax regression per pixel)
//      on the frozen network's feature map, the four stages' maps upsampled to 1/16 of the
//      patch and concatenated, trained on 1, 5, 10, 20 and 100 % of the training masks
//      (at least one) in 5 folds over the masks; its logits are upsampled to the mask and
//      scored by macro-F1 over the mask's labels.
//   4. Regression (§3.7): linear regression with 5-fold cross-validated R² (folds over the
//      points in a seeded random order) of MNI position and the areas' laminar properties
//      (cortical and layer thickness, cell density per layer) on PCA projections of 1 … 256
//      components fitted once on the first seen brain's points; the hand-made features as
//      baselines.
//   5. Clustering and similarity (§1.3, §3.8): purity of repeated k-means (k = areas
//      present) against areas on the first seen brain; Calinski–Harabasz index of the
//      features by area and by brain; mean cosine similarity by area per brain and its
//      Pearson correlation across brains.
//   6. DIR/report.json (every number; keys in docs/eval.md), DIR/report.md (the tables),
//      and PNG plots: loss curve, 2-D PCA embedding by area and by brain, similarity
//      matrix, confusion matrix, hop histogram, an example layer segmentation.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "store/json.h"
#include "store/status.h"

namespace cytonet::train {

struct ReportOptions {
  std::string dataset;
  std::string checkpoint;  // run folder or checkpoint file of the pretrained network
  std::string out;         // the report folder
  // Layer masks: <masks>/<brain>/<section>/<point_id>.tif (0 background, 1..6 layers, 7
  // white matter), each mask_size level-0 pixels around its index point. Empty: no layer
  // segmentation.
  std::string masks;
  // The atlas: {"areas": [{"id", "name", "thickness_mm", "layer_fraction": [6],
  // "cell_density": [6]}, ...],
  // "adjacency": [[a, b], ...]} (cytonet phantom's areas.json). Empty: no hop distances and
  // no laminar regression targets.
  std::string areas;
  // Brains by role. Empty seen and transfer: the pretraining's brains, all but the last by
  // name seen, the last transfer. Empty unseen: every brain without another role.
  std::vector<std::string> seen, transfer, unseen;
  int test_every = 2;  // every n-th section of a seen brain is a test section
  std::string feature_prefix = "report";
  bool overwrite_features = false;  // replace feature sets of that prefix extracted otherwise
  // Fine-tuning of the area probe (train/fine_tune.h), from the pretrained weights and from
  // the random initialisation; 0 epochs: not run.
  int fine_tune_epochs = 0;
  int64_t fine_tune_batch = 32;
  double fine_tune_lr = 0.4;   // base rate, × batch / 256
  std::string device = "cpu";  // where fine-tuning trains ("cuda", "cuda:1"); the rest runs on the CPU
  uint64_t seed = 0;           // random init, resampling, folds, k-means, fine-tuning
  int threads = 0;             // 0: all cores
};

Result<Json> RunReport(const ReportOptions& options, const std::function<void(const std::string&)>& progress);

}  // namespace cytonet::train
