// One conformance suite for every KvStore implementation, plus file-store specifics.
#include "store/kvstore.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "store/kvstore_wrappers.h"
#include "tests/store/test_util.h"

namespace cytonet {
namespace {

using testing::TempDir;

class KvStoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = NewMemoryKvStore();
    } else {
      store_ = testing::ValueOrDie(OpenFileKvStore(dir_.path() + "/root", /*create=*/true));
    }
  }
  TempDir dir_;
  std::shared_ptr<KvStore> store_;
};

TEST_P(KvStoreConformance, AbsentKeyIsNulloptNotError) {
  auto got = store_->Get("missing/key");
  ASSERT_OK(got.status());
  EXPECT_FALSE(got->has_value());
  auto size = store_->Size("missing");
  ASSERT_OK(size.status());
  EXPECT_FALSE(size->has_value());
  auto range = store_->GetRange("missing", {0, 1});
  ASSERT_OK(range.status());
  EXPECT_FALSE(range->has_value());
}

TEST_P(KvStoreConformance, PutGetRoundTrip) {
  Bytes value = testing::PatternBytes(10000, 1);
  ASSERT_OK(store_->Put("a/b/c", value));
  auto got = store_->Get("a/b/c");
  ASSERT_OK(got.status());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, value);
  EXPECT_EQ(**store_->Size("a/b/c"), 10000u);
}

TEST_P(KvStoreConformance, PutReplacesValue) {
  ASSERT_OK(store_->Put("k", AsBytes("first value")));
  ASSERT_OK(store_->Put("k", AsBytes("second")));
  EXPECT_EQ(AsStringView(**store_->Get("k")), "second");
}

TEST_P(KvStoreConformance, ByteRanges) {
  ASSERT_OK(store_->Put("r", AsBytes("0123456789")));
  EXPECT_EQ(AsStringView(**store_->GetRange("r", {2, 3})), "234");
  EXPECT_EQ(AsStringView(**store_->GetRange("r", {0, 10})), "0123456789");
  EXPECT_EQ((**store_->GetRange("r", {10, 0})).size(), 0u);
  auto past_end = store_->GetRange("r", {8, 5});
  EXPECT_EQ(past_end.status().code(), StatusCode::kOutOfRange) << past_end.status().ToString();
  EXPECT_NE(past_end.status().message().find("r"), std::string::npos);
}

TEST_P(KvStoreConformance, EraseAndList) {
  ASSERT_OK(store_->Put("x/1", AsBytes("a")));
  ASSERT_OK(store_->Put("x/2/3", AsBytes("b")));
  ASSERT_OK(store_->Put("y/1", AsBytes("c")));
  auto listed = store_->List("x/");
  ASSERT_OK(listed.status());
  EXPECT_EQ(*listed, (std::vector<std::string>{"x/1", "x/2/3"}));
  EXPECT_EQ(store_->List("")->size(), 3u);
  ASSERT_OK(store_->Erase("x/1"));
  ASSERT_OK(store_->Erase("x/1"));  // erasing an absent key is fine
  EXPECT_FALSE(store_->Get("x/1")->has_value());
  EXPECT_EQ(store_->List("x/")->size(), 1u);
}

TEST_P(KvStoreConformance, EraseTreeRemovesOneSubtreeOnly) {
  ASSERT_OK(store_->Put("s/a/zarr.json", AsBytes("a")));
  ASSERT_OK(store_->Put("s/a/0/c/0/0", AsBytes("b")));
  ASSERT_OK(store_->Put("s/ab/zarr.json", AsBytes("c")));  // shares the string prefix only
  ASSERT_OK(store_->Get("s/a/0/c/0/0").status());          // cached handle must not survive
  ASSERT_OK(store_->EraseTree("s/a"));
  EXPECT_EQ(*store_->List("s/"), (std::vector<std::string>{"s/ab/zarr.json"}));
  EXPECT_FALSE(store_->Get("s/a/0/c/0/0")->has_value());
  ASSERT_OK(store_->EraseTree("s/missing"));
  EXPECT_EQ(store_->EraseTree("../x").code(), StatusCode::kInvalidArgument);
}

TEST(FileKvStore, EraseTreeTakesLeftoversOfInterruptedPuts) {
  TempDir dir;
  auto store = testing::ValueOrDie(OpenFileKvStore(dir.path() + "/root", /*create=*/true));
  ASSERT_OK(store->Put("s/a/k", AsBytes("v")));
  const std::string leftover = dir.path() + "/root/s/a/k.tmp.12345.0";
  std::ofstream(leftover) << "half a shard";
  ASSERT_TRUE(std::filesystem::exists(leftover));
  ASSERT_OK(store->EraseTree("s/a"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/root/s/a"));
}

TEST_P(KvStoreConformance, RejectsKeysThatEscapeTheRoot) {
  for (const char* key : {"../outside", "a/../../b", "/etc/passwd", "", "a//b", "./a", "a/."}) {
    EXPECT_EQ(store_->Put(key, AsBytes("x")).code(), StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(store_->Get(key).status().code(), StatusCode::kInvalidArgument) << key;
  }
}

TEST_P(KvStoreConformance, ConcurrentReadersAndWriters) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        Bytes value = testing::PatternBytes(100 + i, t * 1000 + i);
        ASSERT_OK(store_->Put(key, value));
        EXPECT_EQ(**store_->Get(key), value);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(store_->List("")->size(), 200u);
}

INSTANTIATE_TEST_SUITE_P(AllStores, KvStoreConformance, ::testing::Values("memory", "file"),
                         [](const auto& info) { return info.param; });

TEST(FileKvStore, PutLeavesNoTemporaryFiles) {
  TempDir dir;
  auto store = testing::ValueOrDie(OpenFileKvStore(dir.path(), true));
  for (int i = 0; i < 5; ++i) ASSERT_OK(store->Put("a/value", testing::PatternBytes(1000, i)));
  size_t files = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (e.is_regular_file()) ++files;
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 1u);
}

TEST(FileKvStore, ListSkipsOtherWritersTemporaries) {
  TempDir dir;
  auto store = testing::ValueOrDie(OpenFileKvStore(dir.path(), true));
  ASSERT_OK(store->Put("c/0/0", AsBytes("shard")));
  std::ofstream(dir.path() + "/c/0/1.tmp.123.0") << "half-written by a killed job";
  EXPECT_EQ(*store->List(""), std::vector<std::string>{"c/0/0"});
}

TEST(FileKvStore, SymlinkOutOfTheRootIsRejected) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/root");
  std::filesystem::create_directories(dir.path() + "/secret");
  std::ofstream(dir.path() + "/secret/file") << "not yours";
  std::filesystem::create_directory_symlink(dir.path() + "/secret", dir.path() + "/root/link");
  auto store = testing::ValueOrDie(OpenFileKvStore(dir.path() + "/root", false));
  auto got = store->Get("link/file");
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << got.status().ToString();
  EXPECT_NE(got.status().message().find("outside the store root"), std::string::npos);
  EXPECT_EQ(store->Put("link/new", AsBytes("x")).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/secret/new"));
}

TEST(FileKvStore, MissingRootIsNotFound) {
  TempDir dir;
  auto store = OpenFileKvStore(dir.path() + "/nope", false);
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
  EXPECT_NE(store.status().message().find("nope"), std::string::npos);
}

TEST(FileKvStore, TruncatedFileGivesOutOfRangeNamingTheFile) {
  TempDir dir;
  auto store = testing::ValueOrDie(OpenFileKvStore(dir.path(), true));
  ASSERT_OK(store->Put("shard", testing::PatternBytes(1000, 3)));
  ASSERT_EQ(::truncate((dir.path() + "/shard").c_str(), 500), 0);
  auto got = store->GetRange("shard", {400, 200});
  EXPECT_EQ(got.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(got.status().message().find("/shard"), std::string::npos) << got.status().ToString();
}

TEST(FileKvStore, RangeViewsStayValidAfterReplacement) {
  TempDir dir;
  auto store = testing::ValueOrDie(OpenFileKvStore(dir.path(), true));
  ASSERT_OK(store->Put("shard", AsBytes("0123456789")));
  auto view = testing::ValueOrDie(store->GetRangeView("shard", {2, 5}));
  ASSERT_TRUE(view.has_value());
  ASSERT_OK(store->Put("shard", AsBytes("abcdefghij")));  // rename replaces the file
  EXPECT_EQ(AsStringView(view->bytes), "23456");          // the old mapping still reads
  EXPECT_EQ(AsStringView(testing::ValueOrDie(store->GetRangeView("shard", {2, 5}))->bytes), "cdefg");
  EXPECT_EQ(store->GetRangeView("shard", {8, 5}).status().code(), StatusCode::kOutOfRange);
}

TEST(MetricsKvStore, CountsCallsAndBytes) {
  auto metrics = std::make_shared<MetricsKvStore>(NewMemoryKvStore());
  ASSERT_OK(metrics->Put("k", AsBytes("12345")));
  ASSERT_OK(metrics->Get("k").status());
  ASSERT_OK(metrics->GetRange("k", {1, 2}).status());
  auto c = metrics->counts();
  EXPECT_EQ(c.puts, 1u);
  EXPECT_EQ(c.gets, 1u);
  EXPECT_EQ(c.range_gets, 1u);
  EXPECT_EQ(c.bytes_read, 7u);
  EXPECT_EQ(c.bytes_written, 5u);
}

TEST(FaultInjectingKvStore, FailsAndCorruptsByRule) {
  auto faulty = std::make_shared<FaultInjectingKvStore>(NewMemoryKvStore());
  ASSERT_OK(faulty->Put("a/shard", AsBytes("abcdef")));
  faulty->AddRule({FaultInjectingKvStore::Operation::kWrite, "shard", IOError("disk full"), {}, 1});
  EXPECT_EQ(faulty->Put("a/shard", AsBytes("zzz")).code(), StatusCode::kIOError);
  EXPECT_EQ(AsStringView(**faulty->Get("a/shard")), "abcdef");  // old value kept
  ASSERT_OK(faulty->Put("a/shard", AsBytes("ghijkl")));         // rule used up
  faulty->AddRule({FaultInjectingKvStore::Operation::kRead, "shard", Status(), [](Bytes& b) { b[0] ^= 0xFF; }, -1});
  EXPECT_NE(AsStringView(**faulty->Get("a/shard")), "ghijkl");
}

}  // namespace
}  // namespace cytonet
