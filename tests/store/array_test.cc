// Region reads and writes of sharded and unsharded arrays, caches, and corrupt shards.
#include "store/array.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "store/buffer_pool.h"
#include "store/group.h"
#include "store/kvstore_wrappers.h"
#include "store/ome_zarr.h"
#include "tests/store/test_util.h"

namespace cytonet {
namespace {

using testing::Uint8Metadata;
using testing::ValueOrDie;

// Reference: element (y, x) of the whole array as it was written.
struct Reference {
  std::vector<int64_t> shape;
  Bytes data;
  uint8_t At(int64_t y, int64_t x, uint8_t fill) const {
    if (y < 0 || x < 0 || y >= shape[0] || x >= shape[1]) return fill;
    return data[y * shape[1] + x];
  }
};

// Blobs with empty (zero) regions, so some inner chunks and shards are not stored.
Reference MakeReference(int64_t h, int64_t w) {
  Reference r{{h, w}, Bytes(h * w)};
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const bool empty = x < 256;  // a band of background
      r.data[y * w + x] = empty ? 0 : static_cast<uint8_t>(1 + ((y * 31 + x * 17) ^ (x >> 3)) % 250);
    }
  }
  return r;
}

void ExpectRegion(const ZarrArray& array, const Reference& ref, const Box& box) {
  auto got = array.Read(box);
  ASSERT_OK(got.status());
  const uint8_t fill = array.metadata().fill_value[0];
  for (int64_t y = 0; y < box.shape[0]; ++y) {
    for (int64_t x = 0; x < box.shape[1]; ++x) {
      ASSERT_EQ((*got)[y * box.shape[1] + x], ref.At(box.origin[0] + y, box.origin[1] + x, fill))
          << "at " << box.origin[0] + y << "," << box.origin[1] + x << " of box " << box.ToString();
    }
  }
}

struct Layout {
  std::string name;
  std::optional<std::vector<int64_t>> inner;
  std::string index_location;
};

void PrintTo(const Layout& layout, std::ostream* os) { *os << layout.name; }

class ArrayRoundTrip : public ::testing::TestWithParam<Layout> {};

TEST_P(ArrayRoundTrip, RegionsReadBackWhatWasWritten) {
  testing::TempDir dir;
  auto kv = ValueOrDie(OpenFileKvStore(dir.path(), true));
  auto context = std::make_shared<StoreContext>();
  const Layout& layout = GetParam();
  ArrayMetadata m = Uint8Metadata({300, 500}, {128, 128}, layout.inner, layout.index_location);
  auto array = ValueOrDie(ZarrArray::Create(kv, "img/0", m, context));
  Reference ref = MakeReference(300, 500);
  ASSERT_OK(array->Write(array->domain(), ref.data));

  auto reopened = ValueOrDie(ZarrArray::Open(kv, "img/0", context));
  for (const Box& box :
       {Box{{0, 0}, {300, 500}}, Box{{17, 33}, {100, 211}}, Box{{250, 450}, {100, 100}}, Box{{-20, -30}, {50, 60}},
        Box{{400, 600}, {10, 10}}, Box{{5, 5}, {1, 1}}, Box{{0, 0}, {0, 7}}}) {
    ExpectRegion(*reopened, ref, box);
  }
  // The background band leaves the first column of chunks (shards) unstored.
  EXPECT_FALSE(kv->Get(reopened->ChunkKey({0, 0}))->has_value());
  EXPECT_TRUE(kv->Get(reopened->ChunkKey({0, 2}))->has_value());
}

TEST_P(ArrayRoundTrip, PartialWritesMergeIntoExistingChunks) {
  auto kv = NewMemoryKvStore();
  auto context = std::make_shared<StoreContext>();
  const Layout& layout = GetParam();
  auto array = ValueOrDie(
      ZarrArray::Create(kv, "", Uint8Metadata({300, 500}, {128, 128}, layout.inner, layout.index_location), context));
  Reference ref = MakeReference(300, 500);
  ASSERT_OK(array->Write(array->domain(), ref.data));
  Box patch{{100, 100}, {50, 70}};
  Bytes ones(patch.num_elements(), 1);
  ASSERT_OK(array->Write(patch, ones));
  for (int64_t y = 0; y < 50; ++y) {
    std::memset(&ref.data[(100 + y) * 500 + 100], 1, 70);
  }
  ExpectRegion(*array, ref, array->domain());
  EXPECT_EQ(array->Write(Box{{290, 0}, {20, 5}}, Bytes(100)).code(), StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ArrayRoundTrip,
                         ::testing::Values(Layout{"unsharded", std::nullopt, "end"},
                                           Layout{"sharded_end", std::vector<int64_t>{32, 32}, "end"},
                                           Layout{"sharded_start", std::vector<int64_t>{64, 32}, "start"}),
                         [](const auto& info) { return info.param.name; });

TEST(ShardedArray, IndexCachedAndRangesCoalesced) {
  auto metrics = std::make_shared<MetricsKvStore>(NewMemoryKvStore());
  auto context = std::make_shared<StoreContext>();
  auto array = ValueOrDie(
      ZarrArray::Create(metrics, "a", Uint8Metadata({512, 512}, {512, 512}, std::vector<int64_t>{64, 64}), context));
  Bytes data = testing::PatternBytes(512 * 512, 5);
  ASSERT_OK(array->Write(array->domain(), data));
  metrics->Reset();
  // One row of 4 neighbouring inner chunks: one index read and one coalesced data read.
  ASSERT_OK(array->Read(Box{{10, 10}, {40, 240}}).status());
  auto first = metrics->counts();
  EXPECT_EQ(first.range_gets, 2u);
  metrics->Reset();
  ASSERT_OK(array->Read(Box{{10, 10}, {40, 240}}).status());
  EXPECT_EQ(metrics->counts().range_gets, 1u);  // index from the cache
  EXPECT_EQ(metrics->counts().sizes, 0u);
}

// Two needed inner chunks whose byte ranges lie `gap` apart are fetched with one read when
// the gap is at most StoreContextOptions::coalesce_gap_bytes, else with two.
TEST(ShardedArray, CoalescingStopsAtTheConfiguredGap) {
  for (const auto& [limit, expected_reads] : {std::pair<uint64_t, uint64_t>{1 << 20, 1}, {100, 2}}) {
    auto metrics = std::make_shared<MetricsKvStore>(NewMemoryKvStore());
    StoreContextOptions options;
    options.coalesce_gap_bytes = limit;
    auto array =
        ValueOrDie(ZarrArray::Create(metrics, "a", Uint8Metadata({64, 192}, {64, 192}, std::vector<int64_t>{64, 64}),
                                     std::make_shared<StoreContext>(options)));
    // Noise (1…255, never the fill value): the middle inner chunk is ~4 KiB between the others.
    std::mt19937 rng(3);
    Bytes noise(64 * 192);
    for (uint8_t& b : noise) b = uint8_t(1 + rng() % 255);
    ASSERT_OK(array->Write(array->domain(), noise));
    Bytes pixel(1);
    ASSERT_OK(array->Read(Box{{0, 0}, {1, 1}}, pixel));  // the shard index is cached from here on
    metrics->Reset();
    std::atomic<int> fetched{0};
    ASSERT_OK(array->chunk_store().Fetch({{0, 0}, {0, 2}}, [&](size_t, std::optional<ByteSpan> encoded) {
      fetched += encoded.has_value();
      return Status::Ok();
    }));
    EXPECT_EQ(fetched.load(), 2);
    EXPECT_EQ(metrics->counts().range_gets, expected_reads) << "gap limit " << limit;
  }
}

TEST(ShardedArray, AShardRewrittenToAllFillIsErased) {
  auto kv = NewMemoryKvStore();
  auto array = ValueOrDie(ZarrArray::Create(kv, "", Uint8Metadata({256, 256}, {128, 128}, std::vector<int64_t>{64, 64}),
                                            std::make_shared<StoreContext>()));
  ASSERT_OK(array->Write(array->domain(), Bytes(256 * 256, 5)));
  EXPECT_EQ(kv->List("c/")->size(), 4u);
  ASSERT_OK(array->Write(Box{{128, 0}, {128, 128}}, Bytes(128 * 128, 0)));  // shard (1, 0) back to the fill value
  EXPECT_EQ(*kv->List("c/"), (std::vector<std::string>{"c/0/0", "c/0/1", "c/1/1"}));
  EXPECT_EQ((*array->Read(Box{{130, 5}, {1, 1}}))[0], 0);
}

TEST(ShardedArray, AllEmptyShardIsNotStored) {
  auto kv = NewMemoryKvStore();
  auto array = ValueOrDie(ZarrArray::Create(kv, "", Uint8Metadata({256, 256}, {128, 128}, std::vector<int64_t>{64, 64}),
                                            std::make_shared<StoreContext>()));
  Bytes data(256 * 256, 0);
  data[200 * 256 + 200] = 9;  // only shard (1,1) holds anything
  ASSERT_OK(array->Write(array->domain(), data));
  EXPECT_EQ(*kv->List("c/"), std::vector<std::string>{"c/1/1"});
}

std::shared_ptr<StoreContext> ContextWithChunkCache(size_t bytes) {
  StoreContextOptions options;
  options.chunk_cache_bytes = bytes;
  return std::make_shared<StoreContext>(options);
}

TEST(ShardedArray, ConcurrentReadersAgree) {
  auto kv = NewMemoryKvStore();
  auto context = ContextWithChunkCache(1 << 20);
  auto array = ValueOrDie(
      ZarrArray::Create(kv, "", Uint8Metadata({300, 500}, {128, 128}, std::vector<int64_t>{32, 32}), context));
  Reference ref = MakeReference(300, 500);
  ASSERT_OK(array->Write(array->domain(), ref.data));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i)
        ExpectRegion(*array, ref, Box{{(t * 37 + i * 11) % 250, (t * 53 + i * 29) % 400}, {61, 97}});
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(context->chunk_cache()->hits(), 0u);
}

TEST(ShardedArray, ReadsAfterAWriteSeeTheNewData) {
  auto kv = NewMemoryKvStore();
  auto context = ContextWithChunkCache(8 << 20);
  auto array = ValueOrDie(
      ZarrArray::Create(kv, "", Uint8Metadata({256, 256}, {128, 128}, std::vector<int64_t>{32, 32}), context));
  ASSERT_OK(array->Write(array->domain(), Bytes(256 * 256, 7)));
  EXPECT_EQ((*array->Read(Box{{0, 0}, {64, 64}}))[100], 7);  // now cached
  ASSERT_OK(array->Write(Box{{0, 0}, {128, 128}}, Bytes(128 * 128, 9)));
  EXPECT_EQ((*array->Read(Box{{0, 0}, {64, 64}}))[100], 9);
}

TEST(LruCache, InsertAfterAnEraseIsDropped) {
  LruCache<std::string, Bytes> cache(1 << 20);
  const uint64_t before_read = cache.generation();
  cache.Erase("k");  // a writer invalidates while a reader decodes old bytes
  cache.Insert("k", std::make_shared<Bytes>(10), 10, before_read);
  EXPECT_EQ(cache.Find("k"), nullptr);
  cache.Insert("k", std::make_shared<Bytes>(10), 10, cache.generation());
  EXPECT_NE(cache.Find("k"), nullptr);
  for (int i = 0; i < 200; ++i)
    cache.Insert("k" + std::to_string(i), std::make_shared<Bytes>(8192), 8192, cache.generation());
  EXPECT_LE(cache.used_bytes(), size_t{1} << 20);  // the budget holds
}

// A small budget still holds whole chunks: the cache is not split into parts too small
// for one 512² chunk (256 KiB).
TEST(ShardedArray, ASmallChunkCacheStillHoldsChunks) {
  auto kv = NewMemoryKvStore();
  auto context = ContextWithChunkCache(1 << 20);
  auto array = ValueOrDie(
      ZarrArray::Create(kv, "", Uint8Metadata({1024, 1024}, {1024, 1024}, std::vector<int64_t>{512, 512}), context));
  ASSERT_OK(array->Write(array->domain(), testing::PatternBytes(1024 * 1024, 4)));
  ASSERT_OK(array->Read(Box{{0, 0}, {100, 100}}).status());
  const uint64_t hits = context->chunk_cache()->hits();
  ASSERT_OK(array->Read(Box{{10, 10}, {100, 100}}).status());
  EXPECT_GT(context->chunk_cache()->hits(), hits);
}

TEST(LruCache, EvictsLeastRecentlyUsedWithinEachPart) {
  LruCache<std::string, Bytes> cache(4 * 100, /*parts=*/1);
  for (int i = 0; i < 4; ++i) cache.Insert(std::to_string(i), std::make_shared<Bytes>(100), 100, cache.generation());
  ASSERT_NE(cache.Find("0"), nullptr);  // now the most recent
  cache.Insert("4", std::make_shared<Bytes>(100), 100, cache.generation());
  EXPECT_NE(cache.Find("0"), nullptr);
  EXPECT_EQ(cache.Find("1"), nullptr);  // the least recently used went
  EXPECT_EQ(cache.used_bytes(), 400u);
}

TEST(BufferPool, EvictedBuffersAreReusedUpToTheBound) {
  auto pool = BufferPool::Make(2 * 1000);
  const uint8_t* first = nullptr;
  {
    std::shared_ptr<Bytes> a = pool->Take(1000);
    first = a->data();
    EXPECT_EQ(a->size(), 1000u);
  }
  EXPECT_EQ(pool->idle_bytes(), 1000u);
  std::shared_ptr<Bytes> again = pool->Take(1000);
  EXPECT_EQ(again->data(), first);  // the same memory, no new allocation
  EXPECT_EQ(pool->idle_bytes(), 0u);
  std::vector<std::shared_ptr<Bytes>> many;
  for (int i = 0; i < 5; ++i) many.push_back(pool->Take(1000));
  many.clear();
  EXPECT_EQ(pool->idle_bytes(), 2000u);  // the rest were freed
  std::shared_ptr<Bytes> outlives = pool->Take(1000);
  pool.reset();  // a buffer may outlive its pool
  outlives.reset();
}

TEST(ShardedArray, TwoOpensOfOneArrayShareCachedChunksAndInvalidations) {
  auto kv = NewMemoryKvStore();
  auto context = ContextWithChunkCache(8 << 20);
  auto writer = ValueOrDie(
      ZarrArray::Create(kv, "a", Uint8Metadata({256, 256}, {128, 128}, std::vector<int64_t>{32, 32}), context));
  ASSERT_OK(writer->Write(writer->domain(), Bytes(256 * 256, 7)));
  auto reader = ValueOrDie(ZarrArray::Open(kv, "a", context));
  EXPECT_EQ((*reader->Read(Box{{0, 0}, {64, 64}}))[100], 7);
  const uint64_t hits = context->chunk_cache()->hits();
  EXPECT_EQ((*writer->Read(Box{{0, 0}, {64, 64}}))[100], 7);
  EXPECT_GT(context->chunk_cache()->hits(), hits);  // the reader's decoded chunks serve the writer
  ASSERT_OK(writer->Write(Box{{0, 0}, {128, 128}}, Bytes(128 * 128, 9)));
  EXPECT_EQ((*reader->Read(Box{{0, 0}, {64, 64}}))[100], 9);  // the writer's write reached the reader's cache
}

// ---- corruption: every case is a clear error naming the shard, never a crash ----

class CorruptShard : public ::testing::Test {
 protected:
  void SetUp() override {
    kv_ = ValueOrDie(OpenFileKvStore(dir_.path(), true));
    array_ = ValueOrDie(ZarrArray::Create(kv_, "a", Uint8Metadata({256, 256}, {256, 256}, std::vector<int64_t>{64, 64}),
                                          std::make_shared<StoreContext>()));
    ASSERT_OK(array_->Write(array_->domain(), testing::PatternBytes(256 * 256, 3)));
    shard_path_ = dir_.path() + "/a/c/0/0";
    std::ifstream in(shard_path_, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
  }
  void Rewrite(const std::string& bytes) { std::ofstream(shard_path_, std::ios::binary | std::ios::trunc) << bytes; }
  Status ReadAll() {
    // A fresh store and context, so neither a cached descriptor nor a cached index is used.
    auto kv = ValueOrDie(OpenFileKvStore(dir_.path(), false));
    auto fresh = ValueOrDie(ZarrArray::Open(kv, "a", std::make_shared<StoreContext>()));
    return fresh->Read(fresh->domain()).status();
  }
  // Stores `bytes` as the shard and expects the read to fail naming it (and `detail`).
  void ExpectReadFails(const std::string& bytes, const std::string& detail = "") {
    Rewrite(bytes);
    Status st = ReadAll();
    ExpectCorruption(st);
    EXPECT_NE(st.message().find(detail), std::string::npos) << st.ToString();
  }
  void ExpectCorruption(const Status& st) {
    EXPECT_FALSE(st.ok());
    EXPECT_TRUE(st.code() == StatusCode::kCorruption || st.code() == StatusCode::kOutOfRange) << st.ToString();
    EXPECT_NE(st.message().find("a/c/0/0"), std::string::npos) << st.ToString();
  }
  testing::TempDir dir_;
  std::shared_ptr<KvStore> kv_;
  std::shared_ptr<ZarrArray> array_;
  std::string shard_path_, bytes_;
};

TEST_F(CorruptShard, IntactReadsFine) { EXPECT_OK(ReadAll()); }

TEST_F(CorruptShard, TruncatedShard) { ExpectReadFails(bytes_.substr(0, bytes_.size() / 2)); }

TEST_F(CorruptShard, ShorterThanIndex) { ExpectReadFails(bytes_.substr(0, 100)); }

TEST_F(CorruptShard, BadIndexChecksum) {
  std::string b = bytes_;
  b[b.size() - 100] ^= 0x5A;
  ExpectReadFails(b, "crc32c");
}

TEST_F(CorruptShard, IndexPointsPastTheEnd) {
  // Rewrite entry 0's offset and recompute the checksum so only the bound check can catch it.
  std::string b = bytes_;
  const size_t index_at = b.size() - (16 * 16 + 4);
  uint64_t far = 1ull << 40;
  std::memcpy(&b[index_at], &far, 8);
  uint32_t crc = Crc32c(AsBytes(std::string_view(b).substr(index_at, 16 * 16)));
  std::memcpy(&b[b.size() - 4], &crc, 4);
  ExpectReadFails(b, "outside the shard");
}

TEST_F(CorruptShard, DamagedInnerChunk) {
  std::string b = bytes_;
  for (int i = 0; i < 16; ++i) b[i] = static_cast<char>(0xEE);  // first inner chunk's blosc header
  ExpectReadFails(b, "inner chunk");
}

TEST(CorruptMetadata, WrongDataTypeForStoredChunks) {
  testing::TempDir dir;
  auto kv = ValueOrDie(OpenFileKvStore(dir.path(), true));
  auto array = ValueOrDie(ZarrArray::Create(kv, "a", Uint8Metadata({64, 64}, {64, 64}, std::vector<int64_t>{32, 32}),
                                            std::make_shared<StoreContext>()));
  ASSERT_OK(array->Write(array->domain(), testing::PatternBytes(64 * 64, 2)));
  // Someone edits the metadata to uint16: the stored chunks decode to half the bytes.
  Json json = ToJsonV3(array->metadata());
  json["data_type"] = "uint16";
  json["codecs"][0]["configuration"]["codecs"][0] = {{"name", "bytes"}, {"configuration", {{"endian", "little"}}}};
  json["codecs"][0]["configuration"]["codecs"][1]["configuration"]["typesize"] = 2;
  ASSERT_OK(kv->Put("a/zarr.json", JsonToBytes(json)));
  auto reopened = ValueOrDie(ZarrArray::Open(kv, "a", std::make_shared<StoreContext>()));
  Status st = reopened->Read(reopened->domain()).status();
  EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("a/c/0/0"), std::string::npos) << st.ToString();
}

TEST(CorruptMetadata, FillValueOfTheWrongSize) {
  ArrayMetadata m = Uint8Metadata({8, 8}, {4, 4});
  m.data_type = DataType::kUint16;
  m.codecs = Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}});
  EXPECT_EQ(ZarrArray::Create(NewMemoryKvStore(), "", m, std::make_shared<StoreContext>()).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CorruptMetadata, ClearErrors) {
  testing::TempDir dir;
  auto kv = ValueOrDie(OpenFileKvStore(dir.path(), true));
  auto context = std::make_shared<StoreContext>();
  auto missing = ZarrArray::Open(kv, "nothing/here", context);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nothing/here"), std::string::npos);
  ASSERT_OK(kv->Put("bad/zarr.json", AsBytes("{\"zarr_format\": 3, \"node_type\": ")));
  auto malformed = ZarrArray::Open(kv, "bad", context);
  EXPECT_EQ(malformed.status().code(), StatusCode::kCorruption);
  EXPECT_NE(malformed.status().message().find("bad/zarr.json"), std::string::npos);
  ASSERT_OK(CreateGroup(*kv, "grp", {{"k", 1}}));
  EXPECT_EQ(ZarrArray::Open(kv, "grp", context).status().code(), StatusCode::kInvalidArgument);
}

TEST(Groups, HierarchyListing) {
  auto kv = NewMemoryKvStore();
  auto context = std::make_shared<StoreContext>();
  ASSERT_OK(CreateGroup(*kv, "", {{"cytonet", {{"version", 1}}}}));
  ASSERT_OK(CreateGroup(*kv, "sections", {}));
  ASSERT_OK(ZarrArray::Create(kv, "sections/img", Uint8Metadata({10, 10}, {5, 5}), context).status());
  auto nodes = ValueOrDie(ListNodes(*kv, ""));
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(nodes[0].path, "");
  EXPECT_EQ(nodes[0].attributes["cytonet"]["version"], 1);
  EXPECT_EQ(nodes[2].type, NodeType::kArray);
}

TEST(OmeZarr, PyramidMetadataRoundTrip) {
  auto kv = NewMemoryKvStore();
  auto context = std::make_shared<StoreContext>();
  Multiscale ms = AreaMeanPyramid("s0001", 3, 1.0);
  EXPECT_DOUBLE_EQ(ms.levels[2].scale[0], 4.0);
  EXPECT_DOUBLE_EQ(ms.levels[2].translation[1], 1.5);  // (2^2 - 1) / 2 µm
  ASSERT_OK(WriteMultiscaleGroup(*kv, "img", ms, {{"cytonet", {{"brain", "b01"}}}}));
  for (int k = 0; k < 3; ++k) {
    ASSERT_OK(ZarrArray::Create(kv, "img/" + std::to_string(k), Uint8Metadata({64 >> k, 64 >> k}, {16, 16}), context)
                  .status());
  }
  auto image = ValueOrDie(OpenMultiscaleImage(kv, "img", context));
  EXPECT_EQ(image.multiscale.version, "0.5");
  EXPECT_EQ(image.levels.size(), 3u);
  EXPECT_EQ(image.levels[1]->metadata().shape[0], 32);
  EXPECT_EQ(image.group.attributes["cytonet"]["brain"], "b01");
}

TEST(OmeZarr, Reads04Attributes) {
  Json attrs = Json::parse(
      R"({"multiscales": [{"version": "0.4", "axes": [{"name": "y", "type": "space", "unit": "micrometer"}, {"name": "x", "type": "space", "unit": "micrometer"}],
     "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.5]}]}]}]})");
  auto ms = ParseMultiscale(attrs, "g");
  ASSERT_OK(ms.status());
  EXPECT_EQ(ms->version, "0.4");
  EXPECT_DOUBLE_EQ(ms->levels[0].scale[1], 0.5);
  attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"] = Json::array();
  EXPECT_EQ(ParseMultiscale(attrs, "g").status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace cytonet
