// Sampler: which index rows make up each batch of each epoch, for each rank.
//
// Per epoch, the eligible rows are shuffled by a Fisher–Yates pass whose draws come from
// (seed, epoch, position) through Philox, so the order depends on nothing else. The
// shuffled list is cut into steps of world × batch rows; rank r takes positions
// (step·world + r)·batch … +batch. Every rank gets exactly steps_per_epoch() batches
// (the remainder of the epoch is dropped, a different remainder each epoch), disjoint from
// every other rank's. Resuming at (epoch, step) needs nothing but those two numbers.
//
// A sample's position in the epoch (0 … steps·world·batch − 1) is its identity for
// everything random about it (augmentations): see SampleRef::position.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/status.h"

namespace cytonet {

struct IndexTable;

// Selects index rows; empty sets select everything.
struct SampleFilter {
  std::set<std::string> brains;
  std::set<std::string> sections;  // "brain/section"
  std::set<int32_t> areas;
  std::optional<uint8_t> hemisphere;  // 0 left, 1 right
};

// InvalidArgument naming the first brain or "brain/section" of the filter that the index
// does not hold (a typo would otherwise select nothing, or less than meant).
Status CheckFilter(const IndexTable& table, const SampleFilter& filter);

// The rows of `table` that pass the filter, in index order.
std::vector<int64_t> SelectRows(const IndexTable& table, const SampleFilter& filter);

struct SamplerOptions {
  uint64_t seed = 0;
  int64_t batch_size = 32;
  int rank = 0;
  int world_size = 1;
};

struct SampleRef {
  int64_t row = 0;  // index row
  uint32_t epoch = 0;
  uint32_t position = 0;  // in the epoch's shuffled order: the sample's random identity
};

class Sampler {
 public:
  static Result<Sampler> Make(std::vector<int64_t> rows, SamplerOptions options);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  const SamplerOptions& options() const { return options_; }

  // The shuffled rows of an epoch (the same on every rank).
  std::vector<int64_t> EpochOrder(uint32_t epoch) const;
  // This rank's batch at (epoch, step), step < steps_per_epoch(). With `order` from
  // EpochOrder(epoch) the shuffle is not recomputed.
  std::vector<SampleRef> Batch(uint32_t epoch, int64_t step, const std::vector<int64_t>* order = nullptr) const;

 private:
  Sampler() = default;
  std::vector<int64_t> rows_;
  SamplerOptions options_;
  int64_t steps_per_epoch_ = 0;
};

}  // namespace cytonet
