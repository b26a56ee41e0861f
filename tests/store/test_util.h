// Helpers shared by the store tests.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>

#include "store/array.h"

namespace cytonet::testing {

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::random_device seed_source;  // test scratch names only, never data
    path_ = std::filesystem::temp_directory_path() /
            ("cytonet-test-" + std::to_string(seed_source()) + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

#define ASSERT_OK(expr)                    \
  do {                                     \
    const auto& _s = (expr);               \
    ASSERT_TRUE(_s.ok()) << _s.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                    \
  do {                                     \
    const auto& _s = (expr);               \
    EXPECT_TRUE(_s.ok()) << _s.ToString(); \
  } while (0)

template <typename T>
T ValueOrDie(Result<T> result) {
  if (!result.ok()) {
    ADD_FAILURE() << result.status().ToString();
    std::abort();
  }
  return std::move(result).value();
}

// Deterministic bytes: dark blobs on a bright background, like a stained section.
inline Bytes PatternBytes(size_t n, uint32_t seed) {
  Bytes b(n);
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 7 + (rng() % 13)) & 0xFF);
  return b;
}

// Metadata of a 2-D uint8 array, sharded or not.
inline ArrayMetadata Uint8Metadata(
    std::vector<int64_t> shape, std::vector<int64_t> chunk, std::optional<std::vector<int64_t>> inner = std::nullopt,
    const std::string& index_location = "end",
    Json inner_codecs = Json::array(
        {{{"name", "bytes"}},
         {{"name", "blosc"},
          {"configuration",
           {{"cname", "lz4"}, {"clevel", 5}, {"shuffle", "bitshuffle"}, {"typesize", 1}, {"blocksize", 0}}}}})) {
  ArrayMetadata m;
  m.shape = std::move(shape);
  m.chunk_shape = std::move(chunk);
  m.data_type = DataType::kUint8;
  m.fill_value = {0};
  m.fill_value_json = 0;
  m.dimension_names = std::vector<std::string>{"y", "x"};
  if (inner) {
    m.codecs = Json::array(
        {{{"name", "sharding_indexed"},
          {"configuration",
           {{"chunk_shape", *inner},
            {"codecs", inner_codecs},
            {"index_codecs",
             Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}, {{"name", "crc32c"}}})},
            {"index_location", index_location}}}}});
  } else {
    m.codecs = inner_codecs;
  }
  return m;
}

}  // namespace cytonet::testing
