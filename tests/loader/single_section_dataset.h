// Test helper: an in-memory dataset of one section, B1/0001, holding a given level-0 image
// and its pyramid, written by the pyramid writer with the manifest ingest writes (so the
// readers' checks apply), before any index. For tests of loader/ and train/.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ingest/ingest_job.h"
#include "ingest/pyramid_writer.h"
#include "store/kvstore.h"
#include "tests/store/test_util.h"

namespace cytonet::testing {

inline void OkOrDie(const Status& status) {
  if (!status.ok()) {
    ADD_FAILURE() << status.ToString();
    std::abort();
  }
}

// `image`: height × width grey pixels, row-major. 64² chunks in 256² shards.
inline std::shared_ptr<KvStore> SingleSectionDataset(const std::vector<uint8_t>& image, int64_t height, int64_t width) {
  auto kvstore = NewMemoryKvStore();
  PyramidOptions options;
  options.shard_size = 256;
  options.chunk_size = 64;
  auto writer = ValueOrDie(PyramidWriter::Create(kvstore, "sections/B1/0001", height, width, options));
  for (int64_t y = 0; y < height; y += 64)
    OkOrDie(writer->AppendRows(&image[size_t(y * width)], std::min<int64_t>(64, height - y), width));
  OkOrDie(writer->FinishLevels());
  Json levels = Json::array();
  for (const LevelRecord& level : writer->stats()) levels.push_back(LevelRecordToJson(level));
  OkOrDie(writer->WriteGroup({{"cytonet", {{"ingest", {{"complete", true}, {"levels", levels}}}}}}));
  OkOrDie(PrepareDataset(*kvstore));
  return kvstore;
}

}  // namespace cytonet::testing
