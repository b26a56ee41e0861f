// Dataset verification: metadata, every shard index (bounds and CRC-32C) and, optionally,
// every inner chunk decoded. Reports per section, so one damaged section is found among
// thousands without stopping at the first error.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/kvstore.h"

namespace cytonet {

struct VerifyOptions {
  bool decode = false;  // also decode every stored inner chunk (reads all the data)
};

struct SectionReport {
  std::string brain, section;
  bool complete = false;  // the ingest manifest says complete
  int64_t shards = 0, chunks = 0, bytes = 0;
  std::vector<std::string> problems;  // each names the key at fault
  bool ok() const { return complete && problems.empty(); }
};

struct VerifyReport {
  std::vector<std::string> dataset_problems;  // root group, index
  std::vector<SectionReport> sections;
  bool ok() const;
};

// Checks every section found under sections/ (and the root group's list of them).
Result<VerifyReport> VerifyDataset(std::shared_ptr<KvStore> dataset, const VerifyOptions& options,
                                   const std::function<void(const SectionReport&)>& on_section = {});

}  // namespace cytonet
