#include "loader/sampler.h"

#include <numeric>

#include "dataset/layout.h"
#include "loader/counter_rng.h"

namespace cytonet {

namespace {
constexpr uint32_t kShufflePurpose = 0x5348;  // "SH"
}  // namespace

Status CheckFilter(const IndexTable& table, const SampleFilter& filter) {
  std::set<std::string> brains, sections;
  for (const auto& [brain, section] : table.sections) {
    brains.insert(brain);
    sections.insert(brain + "/" + section);
  }
  for (const std::string& brain : filter.brains) {
    if (!brains.count(brain)) return InvalidArgumentError("filter: brain '" + brain + "' is not in the index");
  }
  for (const std::string& section : filter.sections) {
    if (!sections.count(section)) {
      return InvalidArgumentError("filter: section '" + section + "' (brain/section) is not in the index");
    }
  }
  return Status::Ok();
}

std::vector<int64_t> SelectRows(const IndexTable& table, const SampleFilter& filter) {
  std::vector<bool> section_ok(table.sections.size(), true);
  for (size_t id = 0; id < table.sections.size(); ++id) {
    const auto& [brain, section] = table.sections[id];
    if (!filter.brains.empty() && !filter.brains.count(brain)) section_ok[id] = false;
    if (!filter.sections.empty() && !filter.sections.count(brain + "/" + section)) section_ok[id] = false;
  }
  std::vector<int64_t> rows;
  for (size_t r = 0; r < table.size(); ++r) {
    if (!section_ok[table.section[r]]) continue;
    if (!filter.areas.empty() && !filter.areas.count(table.area[r])) continue;
    if (filter.hemisphere && table.hemisphere[r] != *filter.hemisphere) continue;
    rows.push_back(int64_t(r));
  }
  return rows;
}

Result<Sampler> Sampler::Make(std::vector<int64_t> rows, SamplerOptions options) {
  if (options.batch_size <= 0 || options.world_size <= 0 || options.rank < 0 || options.rank >= options.world_size) {
    return InvalidArgumentError("sampler: batch size " + std::to_string(options.batch_size) + ", rank " +
                                std::to_string(options.rank) + " of " + std::to_string(options.world_size) +
                                " is not valid");
  }
  if (rows.size() > (size_t(1) << 32)) return InvalidArgumentError("sampler: more than 2^32 rows");
  Sampler sampler;
  sampler.steps_per_epoch_ = int64_t(rows.size()) / (options.batch_size * options.world_size);
  if (sampler.steps_per_epoch_ == 0) {
    return InvalidArgumentError("sampler: " + std::to_string(rows.size()) + " rows are fewer than one step of " +
                                std::to_string(options.world_size) + " ranks × " + std::to_string(options.batch_size));
  }
  sampler.rows_ = std::move(rows);
  sampler.options_ = options;
  return sampler;
}

std::vector<int64_t> Sampler::EpochOrder(uint32_t epoch) const {
  std::vector<int64_t> order = rows_;
  // Fisher–Yates from the back: the swap partner of position i is draw i of (seed, epoch).
  for (size_t i = order.size(); i > 1; --i) {
    const CounterRng rng(options_.seed, kShufflePurpose, epoch, uint32_t(i - 1));
    std::swap(order[i - 1], order[rng.Below(0, i)]);
  }
  return order;
}

std::vector<SampleRef> Sampler::Batch(uint32_t epoch, int64_t step, const std::vector<int64_t>* order) const {
  std::vector<int64_t> own;
  if (!order) own = EpochOrder(epoch), order = &own;
  const int64_t b = options_.batch_size;
  const int64_t first = (step * options_.world_size + options_.rank) * b;
  std::vector<SampleRef> batch;
  batch.reserve(size_t(b));
  for (int64_t i = 0; i < b; ++i) batch.push_back({(*order)[size_t(first + i)], epoch, uint32_t(first + i)});
  return batch;
}

}  // namespace cytonet
