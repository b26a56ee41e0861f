// Unit tests of loader/: counter-based randomness, the sampler, augmentation draws and
// patch geometry.
#include "loader/loader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <numeric>
#include <set>
#include <thread>

#include "dataset/layout.h"
#include "ingest/ingest_job.h"
#include "ingest/point_index.h"
#include "ingest/pyramid_writer.h"
#include "loader/augmentation.h"
#include "loader/counter_rng.h"
#include "loader/patch_reader.h"
#include "loader/sampler.h"
#include "loader/warp.h"
#include "tests/loader/single_section_dataset.h"
#include "tests/store/test_util.h"

namespace cytonet {
namespace {

TEST(Philox4x32, MatchesTheRandom123KnownAnswers) {
  // kat_vectors of Random123 for philox4x32 with 10 rounds.
  EXPECT_EQ(Philox4x32({0, 0, 0, 0}, {0, 0}), (PhiloxBlock{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(Philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (PhiloxBlock{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(Philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (PhiloxBlock{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(CounterRng, DrawsArePureFunctionsOfTheirCounterAndLookUniform) {
  const CounterRng a(7, 1, 2, 3), b(7, 1, 2, 3), other(7, 1, 2, 4);
  EXPECT_EQ(a.Bits(5), b.Bits(5));
  EXPECT_NE(a.Bits(5), other.Bits(5));
  double sum = 0;
  std::vector<int> buckets(10, 0);
  for (uint32_t i = 0; i < 100000; ++i) {
    const double u = CounterRng(7, 1, 2, i).Uniform(0);
    ASSERT_GE(u, 0);
    ASSERT_LT(u, 1);
    sum += u;
    ++buckets[size_t(u * 10)];
  }
  EXPECT_NEAR(sum / 100000, 0.5, 0.005);
  for (int count : buckets) EXPECT_NEAR(count, 10000, 400);
  for (uint32_t i = 0; i < 1000; ++i) EXPECT_LT(CounterRng(1, 2, 3, i).Below(0, 7), 7u);
}

IndexTable TableOf(int64_t rows) {
  IndexTable t;
  t.sections = {{"B1", "0001"}, {"B1", "0002"}, {"B2", "0001"}};
  for (int64_t r = 0; r < rows; ++r) {
    t.section.push_back(uint32_t(r % 3));
    t.point_id.push_back(r);
    t.x_px.push_back(double(r));
    t.y_px.push_back(double(r));
    // Distinct values per row and column, so a test that reads the wrong column or row fails.
    t.mni_x.push_back(1.5 * double(r) - 20);
    t.mni_y.push_back(100 - double(r));
    t.mni_z.push_back(0.25 * double(r) + 3);
    t.area.push_back(int32_t(r % 5));
    t.layer.push_back(int8_t(1 + r % 6));
    t.hemisphere.push_back(uint8_t(r % 2));
    t.tissue_fraction.push_back(1);
  }
  return t;
}

TEST(Sampler, FiltersSelectRowsByBrainSectionAreaAndHemisphere) {
  const IndexTable t = TableOf(30);
  EXPECT_EQ(SelectRows(t, {}).size(), 30u);
  SampleFilter f;
  f.brains = {"B1"};
  EXPECT_EQ(SelectRows(t, f).size(), 20u);
  f.sections = {"B1/0002"};
  ASSERT_EQ(SelectRows(t, f).size(), 10u);  // rows with r % 3 == 1
  for (int64_t r : SelectRows(t, f)) EXPECT_EQ(t.section[size_t(r)], 1u);
  SampleFilter g;
  g.areas = {2};
  g.hemisphere = 0;
  EXPECT_EQ(SelectRows(t, g), (std::vector<int64_t>{2, 12, 22}));  // r % 5 == 2 and r even
}

TEST(Sampler, RanksTakeDisjointEqualSlicesOfTheSameEpochOrder) {
  std::vector<int64_t> rows(1003);
  std::iota(rows.begin(), rows.end(), 0);
  const int world = 4;
  std::vector<Sampler> ranks;
  for (int r = 0; r < world; ++r) ranks.push_back(*Sampler::Make(rows, {42, 25, r, world}));
  EXPECT_EQ(ranks[0].steps_per_epoch(), 1003 / (25 * 4));
  for (uint32_t epoch : {0u, 1u}) {
    std::set<int64_t> seen;
    std::set<uint32_t> positions;
    for (int r = 0; r < world; ++r) {
      for (int64_t step = 0; step < ranks[size_t(r)].steps_per_epoch(); ++step) {
        const auto batch = ranks[size_t(r)].Batch(epoch, step);
        ASSERT_EQ(batch.size(), 25u);
        for (const SampleRef& s : batch) {
          EXPECT_TRUE(seen.insert(s.row).second) << "row " << s.row << " twice in epoch " << epoch;
          EXPECT_TRUE(positions.insert(s.position).second);
        }
      }
    }
    EXPECT_EQ(seen.size(), size_t(10 * 25 * 4));
  }
  // Epochs are shuffled differently; the same seed and epoch give the same order.
  EXPECT_NE(ranks[0].EpochOrder(0), ranks[0].EpochOrder(1));
  EXPECT_EQ(ranks[0].EpochOrder(3), ranks[1].EpochOrder(3));
  EXPECT_NE(ranks[0].EpochOrder(0), Sampler::Make(rows, {43, 25, 0, world})->EpochOrder(0));
}

TEST(Sampler, ResumingAtAStepGivesTheBatchesOfAnUninterruptedRunWhateverTheThreads) {
  std::vector<int64_t> rows(500);
  std::iota(rows.begin(), rows.end(), 1000);
  const Sampler sampler = *Sampler::Make(rows, {9, 16, 1, 2});
  std::vector<std::vector<SampleRef>> uninterrupted;
  const auto order = sampler.EpochOrder(5);
  for (int64_t step = 0; step < sampler.steps_per_epoch(); ++step)
    uninterrupted.push_back(sampler.Batch(5, step, &order));
  // A fresh sampler (a restarted job) asked for step 7 directly, from several threads.
  const Sampler restarted = *Sampler::Make(rows, {9, 16, 1, 2});
  std::vector<std::vector<SampleRef>> resumed(size_t(restarted.steps_per_epoch()));
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t step = 7 + t; step < restarted.steps_per_epoch(); step += 3)
        resumed[size_t(step)] = restarted.Batch(5, step);
    });
  }
  for (auto& th : threads) th.join();
  for (int64_t step = 7; step < sampler.steps_per_epoch(); ++step) {
    for (size_t i = 0; i < 16; ++i) {
      EXPECT_EQ(resumed[size_t(step)][i].row, uninterrupted[size_t(step)][i].row);
      EXPECT_EQ(resumed[size_t(step)][i].position, uninterrupted[size_t(step)][i].position);
    }
  }
  EXPECT_FALSE(Sampler::Make(std::vector<int64_t>(10), {1, 16, 0, 1}).ok());  // fewer rows than a batch
  EXPECT_FALSE(Sampler::Make(rows, {1, 16, 2, 2}).ok());                      // rank out of range
}

TEST(Augmentation, ParametersStayInsideThePapersRanges) {
  int blur = 0, sharpen = 0, mirror = 0;
  double gamma_min = 10, gamma_max = 0;
  const int n = 20000;
  for (uint32_t i = 0; i < uint32_t(n); ++i) {
    const AugmentationParams p = DrawAugmentation(3, 1, i, {});
    ASSERT_GE(p.theta, -std::numbers::pi);
    ASSERT_LE(p.theta, std::numbers::pi);
    ASSERT_GE(p.shift_mm, 0);
    ASSERT_LE(p.shift_mm, 0.2);
    ASSERT_GE(p.alpha, 0.9);
    ASSERT_LE(p.alpha, 1.0);
    ASSERT_GE(p.beta, -0.1);
    ASSERT_LE(p.beta, 0.1);
    gamma_min = std::min(gamma_min, p.gamma);
    gamma_max = std::max(gamma_max, p.gamma);
    if (p.filter != PatchFilter::kNone) {
      ASSERT_GE(p.sigma, 0.125);
      ASSERT_LE(p.sigma, 1.0);
    }
    if (p.filter == PatchFilter::kSharpen) {
      ASSERT_GE(p.delta, 0.5);
      ASSERT_LE(p.delta, 1.5);
    }
    blur += p.filter == PatchFilter::kBlur;
    sharpen += p.filter == PatchFilter::kSharpen;
    mirror += p.mirror;
  }
  // γ = log(0.5 + Z/√2) / log(0.5 − Z/√2), Z ∈ [−0.05, 0.05].
  EXPECT_GE(gamma_min, 0.814);
  EXPECT_LE(gamma_max, 1.228);
  EXPECT_LT(gamma_min, 0.83);
  EXPECT_GT(gamma_max, 1.20);
  EXPECT_NEAR(double(blur) / n, 0.25, 0.02);
  EXPECT_NEAR(double(sharpen) / n, 0.25, 0.02);
  EXPECT_NEAR(double(mirror) / n, 0.5, 0.02);
  // Same (seed, epoch, position): same parameters; switched off: identity.
  const AugmentationParams a = DrawAugmentation(3, 1, 77, {}), b = DrawAugmentation(3, 1, 77, {});
  EXPECT_EQ(a.theta, b.theta);
  EXPECT_EQ(a.gamma, b.gamma);
  AugmentationOptions off;
  off.enabled = false;
  EXPECT_TRUE(DrawAugmentation(3, 1, 77, off).IsIdentity());
  AugmentationOptions geometry_only;
  geometry_only.intensity = geometry_only.filter = false;
  EXPECT_EQ(DrawAugmentation(3, 1, 77, geometry_only).theta, a.theta);  // one group off leaves the others
}

// The fast warp must give cv::warpAffine's bytes exactly: random rotations, mirrors and
// shifts, patches hanging over every edge of the source, odd sizes, tiny sources, with and
// without the gamma table.
TEST(Warp, FastKernelEqualsOpenCVBitForBit) {
  if (!WarpHasFastPath()) GTEST_SKIP() << "no AVX2 on this CPU: the OpenCV path is the only one";
  const CounterRng rng(11, 0, 0, 0);
  std::array<uint8_t, 256> gamma;
  for (int v = 0; v < 256; ++v) gamma[size_t(v)] = uint8_t(std::lround(255 * std::pow(v / 255.0, 0.83)));
  uint32_t draw = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int width = 1 + int(rng.Uniform(draw++) * 90), height = 1 + int(rng.Uniform(draw++) * 90);
    const int size = 1 + int(rng.Uniform(draw++) * 70);
    std::vector<uint8_t> source(size_t(width * height) + kWarpSourcePadding);
    for (size_t i = 0; i < source.size(); ++i) source[i] = uint8_t(rng.Bits(draw++));
    const double theta = rng.Uniform(draw++, -std::numbers::pi, std::numbers::pi),
                 m = rng.Uniform(draw++) < 0.5 ? -1 : 1;
    // Centre anywhere from well outside to the middle of the source.
    const double cx = rng.Uniform(draw++, -20, width + 20), cy = rng.Uniform(draw++, -20, height + 20),
                 h = (size - 1) / 2.0;
    const double a = std::cos(theta), b = -std::sin(theta) * m, c = std::sin(theta), d = std::cos(theta) * m;
    const std::array<double, 6> map = {a, b, cx - (a + b) * h, c, d, cy - (c + d) * h};
    const GreyView view{source.data(), width, height, width};
    const uint8_t fill = uint8_t(rng.Bits(draw++));
    const std::array<uint8_t, 256>* tables[] = {nullptr, &gamma};
    for (const std::array<uint8_t, 256>* table : tables) {
      std::vector<uint8_t> fast(size_t(size * size)), reference(size_t(size * size));
      WarpAffineBilinear(view, map, fill, table, size, fast.data());
      WarpAffineBilinearOpenCV(view, map, fill, table, size, reference.data());
      size_t first = 0;
      while (first < fast.size() && fast[first] == reference[first]) ++first;
      ASSERT_EQ(fast, reference) << "first difference at (" << first % size_t(size) << ", " << first / size_t(size)
                                 << "): " << int(fast[first < fast.size() ? first : 0]) << " vs "
                                 << int(reference[first < fast.size() ? first : 0]) << ", fill " << int(fill)
                                 << "; trial " << trial << ": " << width << "×" << height << " source, size " << size
                                 << ", θ " << theta << ", centre (" << cx << ", " << cy << ")"
                                 << (table ? ", gamma" : "");
    }
  }
}

// A dataset with one section whose level 0 is a known pattern, and an index of 3 points.
class PatchGeometry : public ::testing::Test {
 protected:
  void SetUp() override {
    image_.resize(size_t(kHeight * kWidth));
    for (int64_t y = 0; y < kHeight; ++y) {
      for (int64_t x = 0; x < kWidth; ++x)
        image_[size_t(y * kWidth + x)] = uint8_t((x * 7 + y * 13 + (x * y) % 11) % 250);
    }
    kvstore_ = testing::SingleSectionDataset(image_, kHeight, kWidth);
    reader_ = testing::ValueOrDie(PatchReader::Open(kvstore_, std::make_shared<StoreContext>()));
  }
  // Level-0 crop with top-left (x0, y0), outside the image = 255.
  std::vector<uint8_t> Crop(int64_t x0, int64_t y0, int64_t size) const {
    std::vector<uint8_t> out(size_t(size * size), 255);
    for (int64_t v = 0; v < size; ++v) {
      for (int64_t u = 0; u < size; ++u) {
        const int64_t x = x0 + u, y = y0 + v;
        if (x >= 0 && y >= 0 && x < kWidth && y < kHeight) out[size_t(v * size + u)] = image_[size_t(y * kWidth + x)];
      }
    }
    return out;
  }
  std::vector<uint8_t> Patch(double cx, double cy, int64_t size, const AugmentationParams& a, int level = 0) const {
    PatchRequest r{"B1", "0001", level, cx, cy, size, a};
    auto bytes = testing::ValueOrDie(reader_->Read(r));
    return {bytes.begin(), bytes.end()};
  }
  static constexpr int64_t kHeight = 300, kWidth = 420;
  std::shared_ptr<KvStore> kvstore_;
  std::vector<uint8_t> image_;
  std::unique_ptr<PatchReader> reader_;
};

TEST_F(PatchGeometry, PlainCropsAndRotationByAFullTurnEqualTheImage) {
  // size 64 centred at 100.5 → h = 31.5, top-left 69.
  const auto plain = Patch(100.5, 80.5, 64, {});
  EXPECT_EQ(plain, Crop(69, 49, 64));
  AugmentationParams full_turn;
  full_turn.theta = 2 * std::numbers::pi;  // takes the warp path, lands on whole pixels
  EXPECT_EQ(Patch(100.5, 80.5, 64, full_turn), plain);
  // Near the edge: outside reads as background.
  EXPECT_EQ(Patch(10.5, 5.5, 32, {}), Crop(-5, -10, 32));
}

// Rotated patches read only the chunks under the rotated square (not the corners of its
// bounding box): every patch must still equal OpenCV's warp of the whole image, also right
// after other patches left other pixels in the reader's source buffer.
TEST_F(PatchGeometry, RotatedPatchesEqualTheWarpOfTheWholeImage) {
  const int64_t n = 160;  // bounding boxes up to 227² over 64² chunks: corners skip chunks
  const double cx = 209.5, cy = 149.5, h = double(n - 1) / 2;
  const GreyView whole{image_.data(), int(kWidth), int(kHeight), ptrdiff_t(kWidth)};
  for (int k = 0; k < 24; ++k) {
    AugmentationParams a;
    a.theta = -std::numbers::pi + (k + 0.37) * std::numbers::pi / 12;
    a.mirror = k % 3 == 0;
    (void)Patch(60 + 7 * k, 80, 64, a);  // another patch first: other bytes in the buffer
    const double m = a.mirror ? -1.0 : 1.0;
    const std::array<double, 4> A = {std::cos(a.theta), -std::sin(a.theta) * m, std::sin(a.theta),
                                     std::cos(a.theta) * m};
    const std::array<double, 6> map = {A[0], A[1], cx - A[0] * h - A[1] * h, A[2], A[3], cy - A[2] * h - A[3] * h};
    std::vector<uint8_t> expected(size_t(n * n));
    WarpAffineBilinearOpenCV(whole, map, 255, nullptr, int(n), expected.data());
    ASSERT_EQ(Patch(cx, cy, n, a), expected) << "theta " << a.theta << (a.mirror ? ", mirrored" : "");
  }
}

TEST_F(PatchGeometry, RotationMirrorAndShiftLandWhereGeometrySays) {
  const int64_t n = 48;
  const auto crop = Crop(200 - 24, 150 - 24, n);  // centre 199.5, 149.5 → h = 23.5 → top-left 176, 126
  auto at = [&](const std::vector<uint8_t>& img, int64_t row, int64_t col) { return img[size_t(row * n + col)]; };
  AugmentationParams quarter;
  quarter.theta = std::numbers::pi / 2;  // source = c + (−(v − h), u − h)
  const auto rotated = Patch(199.5, 149.5, n, quarter);
  for (int64_t v = 0; v < n; ++v) {
    for (int64_t u = 0; u < n; ++u) ASSERT_EQ(at(rotated, v, u), at(crop, u, n - 1 - v)) << u << "," << v;
  }
  AugmentationParams mirrored;
  mirrored.mirror = true;
  const auto flipped = Patch(199.5, 149.5, n, mirrored);
  for (int64_t v = 0; v < n; ++v) {
    for (int64_t u = 0; u < n; ++u) ASSERT_EQ(at(flipped, v, u), at(crop, n - 1 - v, u));
  }
  AugmentationParams shifted;  // 5 µm along +x at 1 µm/px: 5 pixels
  shifted.shift_mm = 0.005;
  shifted.shift_direction = 0;
  EXPECT_EQ(Patch(199.5, 149.5, n, shifted), Crop(181, 126, n));
}

TEST(CentredBox, MovesOnePixelPerPixelOfCentreOnBothSidesOfZero) {
  // Rounding half away from zero (llround) would jump two pixels between c = 31 and 32
  // for size 64 (origins −1, +1) and never give origin 0.
  for (const int64_t size : {1, 2, 63, 64, 2048}) {
    for (int64_t c = -70; c <= 70; ++c) {
      const Box here = CentredBox(double(c), double(c), size), next = CentredBox(double(c + 1), double(c + 1), size);
      EXPECT_EQ(next.origin[0] - here.origin[0], 1) << "size " << size << ", centre " << c;
      EXPECT_EQ(here.origin[0], here.origin[1]);
      EXPECT_EQ(here.shape, (std::vector<int64_t>{size, size}));
    }
  }
  EXPECT_EQ(CentredBox(31, 31, 64).origin, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(CentredBox(32, 32, 64).origin, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(CentredBox(5, 5, 11).origin, (std::vector<int64_t>{0, 0}));  // odd: centre pixel in the middle
}

TEST_F(PatchGeometry, EvenPlainPatchesAtTheTopLeftBorderAreTheCropOfTheConvention) {
  EXPECT_EQ(Patch(31, 31, 64, {}), Crop(0, 0, 64));
  EXPECT_EQ(Patch(32, 32, 64, {}), Crop(1, 1, 64));
  EXPECT_EQ(Patch(30, 30, 64, {}), Crop(-1, -1, 64));
}

TEST_F(PatchGeometry, LevelsSampleTheCoarserImageAroundTheSameCentre) {
  // Level-1 pixel i covers level-0 pixels 2i and 2i+1, so level-0 centre (199.5, 99.5) is
  // level-1 (99.5, 49.5); with h = 7.5 the crop's top-left is (92, 42).
  auto level1 = testing::ValueOrDie(reader_->Read(PatchRequest{"B1", "0001", 1, 199.5, 99.5, 16, {}}));
  const MultiscaleImage image =
      testing::ValueOrDie(OpenMultiscaleImage(kvstore_, "sections/B1/0001", std::make_shared<StoreContext>()));
  auto expected = testing::ValueOrDie(image.levels[1]->Read(Box{{42, 92}, {16, 16}}));
  EXPECT_EQ(level1, expected);
}

TEST_F(PatchGeometry, IntensityAugmentationIsTheGammaFormulaAndFiltersChangeSharpness) {
  AugmentationParams gamma;
  gamma.alpha = 0.95;
  gamma.beta = 0.05;
  gamma.gamma = 1.1;
  const auto plain = Patch(100.5, 80.5, 64, {});
  const auto adjusted = Patch(100.5, 80.5, 64, gamma);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double x = 0.95 * std::pow(plain[i] / 255.0, 1.1) + 0.05;
    ASSERT_EQ(adjusted[i], uint8_t(std::lround(std::clamp(x, 0.0, 1.0) * 255)));
  }
  auto roughness = [](const std::vector<uint8_t>& img) {
    double sum = 0;
    for (size_t i = 1; i < img.size(); ++i) sum += std::abs(int(img[i]) - int(img[i - 1]));
    return sum;
  };
  AugmentationParams blur, sharpen;
  blur.filter = PatchFilter::kBlur;
  blur.sigma = 1.0;
  sharpen.filter = PatchFilter::kSharpen;
  sharpen.sigma = 1.0;
  sharpen.delta = 1.0;
  EXPECT_LT(roughness(Patch(100.5, 80.5, 64, blur)), 0.9 * roughness(plain));
  EXPECT_GT(roughness(Patch(100.5, 80.5, 64, sharpen)), 1.1 * roughness(plain));
}

TEST_F(PatchGeometry, UnknownSectionsLevelsAndRowsAreClearErrors) {
  auto missing = reader_->Read(PatchRequest{"B9", "0001", 0, 10, 10, 8, {}});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("B9/0001"), std::string::npos);
  auto level = reader_->Read(PatchRequest{"B1", "0001", 9, 10, 10, 8, {}});
  EXPECT_EQ(level.status().code(), StatusCode::kOutOfRange);
  std::vector<uint8_t> out(64);
  EXPECT_EQ(reader_->ReadRow(0, 0, 8, {}, out.data()).code(), StatusCode::kFailedPrecondition);  // no index yet
}

TEST_F(PatchGeometry, IndexRowsReadTheirPoint) {
  IndexTable table = TableOf(3);
  table.sections = {{"B1", "0001"}};
  for (auto& s : table.section) s = 0;
  table.x_px = {100.5, 199.5, 10.5};
  table.y_px = {80.5, 149.5, 5.5};
  IndexStats stats;
  stats.kept = 3;
  ASSERT_OK(WriteIndex(kvstore_, table, {}, &stats));
  auto reader = testing::ValueOrDie(PatchReader::Open(kvstore_, std::make_shared<StoreContext>()));
  std::vector<uint8_t> out(64 * 64);
  ASSERT_OK(reader->ReadRow(0, 0, 64, {}, out.data()));
  EXPECT_EQ(out, Crop(69, 49, 64));
  EXPECT_EQ(reader->ReadRow(3, 0, 64, {}, out.data()).code(), StatusCode::kOutOfRange);
}

// A dataset of one 300 × 420 section and 60 points, for the loader.
class LoaderRun : public PatchGeometry {
 protected:
  void SetUp() override {
    PatchGeometry::SetUp();
    IndexTable table = TableOf(60);
    table.sections = {{"B1", "0001"}};
    for (size_t r = 0; r < 60; ++r) {
      table.section[r] = 0;
      table.x_px[r] = 20 + double((r * 37) % 380);
      table.y_px[r] = 20 + double((r * 53) % 260);
    }
    IndexStats stats;
    stats.kept = 60;
    ASSERT_OK(WriteIndex(kvstore_, table, {}, &stats));
    shared_reader_ = testing::ValueOrDie(PatchReader::Open(kvstore_, std::make_shared<StoreContext>()));
  }
  LoaderOptions Options(int threads) const {
    LoaderOptions o;
    o.sampler = {11, 4, 0, 1};
    o.level = 0;
    o.patch_size = 24;
    o.threads = threads;
    o.ring_depth = 3;
    o.end_epoch = 2;
    return o;
  }
  // Every batch of a run: images and rows.
  std::vector<std::pair<std::vector<uint8_t>, std::vector<int64_t>>> RunAll(const LoaderOptions& o) const {
    auto loader = testing::ValueOrDie(Loader::Start(shared_reader_, o));
    std::vector<std::pair<std::vector<uint8_t>, std::vector<int64_t>>> batches;
    while (true) {
      auto batch = testing::ValueOrDie(loader->Next());
      if (!batch) break;
      EXPECT_EQ(batch->skipped, 0);
      // Next() hands batches out in (epoch, step) order, each with the sampler's rows.
      const int64_t steps = loader->sampler().steps_per_epoch();
      const int64_t expected = int64_t(o.start_epoch) * steps + o.start_step + int64_t(batches.size());
      EXPECT_EQ(int64_t(batch->epoch) * steps + batch->step, expected);
      std::vector<int64_t> rows;
      for (const SampleRef& s : loader->sampler().Batch(batch->epoch, batch->step)) rows.push_back(s.row);
      EXPECT_EQ(batch->rows, rows);
      batches.push_back({std::vector<uint8_t>(batch->images, batch->images + loader->batch_bytes()), batch->rows});
    }
    return batches;
  }
  std::shared_ptr<const PatchReader> shared_reader_;
};

TEST_F(LoaderRun, BatchesAreTheSameWhateverTheThreadCount) {
  const auto one = RunAll(Options(1)), three = RunAll(Options(3));
  ASSERT_EQ(one.size(), size_t(2 * (60 / 4)));  // two epochs of 15 steps
  ASSERT_EQ(three.size(), one.size());
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i].second, three[i].second) << "batch " << i;
    EXPECT_EQ(one[i].first, three[i].first) << "batch " << i;
  }
  EXPECT_NE(one[0].first, one[1].first);
}

// Two ranks of batch B at a step are the one-rank batch of 2B at that step, split in two:
// the same rows, the same augmentations (keyed on the sample's position in the epoch,
// which counts across ranks), the same pixels. A rank-blind augmentation fails this.
TEST_F(LoaderRun, TwoRanksTogetherGiveTheOneRankBatchOfTwiceTheSize) {
  LoaderOptions whole = Options(2);
  whole.sampler.batch_size = 8;
  const auto one_rank = RunAll(whole);
  std::vector<std::vector<std::pair<std::vector<uint8_t>, std::vector<int64_t>>>> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    LoaderOptions part = Options(2);
    part.sampler = {11, 4, rank, 2};
    ranks.push_back(RunAll(part));
  }
  ASSERT_EQ(ranks[0].size(), one_rank.size());
  ASSERT_EQ(ranks[1].size(), one_rank.size());
  for (size_t i = 0; i < one_rank.size(); ++i) {
    std::vector<int64_t> rows = ranks[0][i].second;
    rows.insert(rows.end(), ranks[1][i].second.begin(), ranks[1][i].second.end());
    EXPECT_EQ(rows, one_rank[i].second) << "batch " << i;
    std::vector<uint8_t> images = ranks[0][i].first;
    images.insert(images.end(), ranks[1][i].first.begin(), ranks[1][i].first.end());
    EXPECT_EQ(images, one_rank[i].first) << "batch " << i;
  }
}

TEST_F(LoaderRun, StartingAtAStepGivesTheUninterruptedRunsBatches) {
  const auto all = RunAll(Options(2));
  LoaderOptions resumed = Options(2);
  resumed.start_epoch = 1;
  resumed.start_step = 6;
  const auto tail = RunAll(resumed);
  ASSERT_EQ(tail.size(), all.size() - 15 - 6);
  for (size_t i = 0; i < tail.size(); ++i) EXPECT_EQ(tail[i], all[15 + 6 + i]) << "batch " << i;
}

// Two views: the first half of each batch is the one-view batch, pixel for pixel; the second
// half holds the same points (rows, positions, labels) under their own augmentation, which
// is the reader's patch for the view-1 parameters and differs from view 0.
TEST_F(LoaderRun, ViewsShareThePointAndDifferInAugmentation) {
  const auto one_view = RunAll(Options(2));
  LoaderOptions two = Options(2);
  two.views = 2;
  auto loader = testing::ValueOrDie(Loader::Start(shared_reader_, two));
  const int64_t n = 4, pixels = 24 * 24;
  for (size_t i = 0; i < one_view.size(); ++i) {
    auto batch = testing::ValueOrDie(loader->Next());
    ASSERT_TRUE(batch);
    ASSERT_EQ(batch->size, 2 * n);
    EXPECT_TRUE(std::equal(one_view[i].first.begin(), one_view[i].first.end(), batch->images)) << "batch " << i;
    int differing = 0;
    for (int64_t j = 0; j < n; ++j) {
      const size_t a = size_t(j), b = size_t(n + j);
      EXPECT_EQ(batch->rows[a], one_view[i].second[a]);
      EXPECT_EQ(batch->rows[b], batch->rows[a]);
      EXPECT_EQ(batch->positions[b], batch->positions[a]);
      EXPECT_EQ(batch->mni[3 * b], batch->mni[3 * a]);
      EXPECT_EQ(batch->area[b], batch->area[a]);
      const AugmentationParams second = DrawAugmentation(11, batch->epoch, batch->positions[b], {}, 1);
      EXPECT_EQ(batch->augmentation[b].theta, second.theta);
      EXPECT_NE(batch->augmentation[b].theta, batch->augmentation[a].theta);
      std::vector<uint8_t> patch(static_cast<size_t>(pixels));
      ASSERT_OK(shared_reader_->ReadRow(batch->rows[b], 0, 24, second, patch.data()));
      EXPECT_TRUE(std::equal(patch.begin(), patch.end(), batch->images + b * pixels));
      differing +=
          !std::equal(batch->images + a * pixels, batch->images + (a + 1) * pixels, batch->images + b * pixels);
    }
    EXPECT_GT(differing, 0) << "batch " << i;
  }
  two.views = 0;
  EXPECT_EQ(Loader::Start(shared_reader_, two).status().code(), StatusCode::kInvalidArgument);
}

// A filter that names a section or brain the index lacks is an error naming it, not an
// empty or smaller selection.
TEST_F(LoaderRun, AFilterNamingAnUnknownSectionIsRefusedByName) {
  LoaderOptions o = Options(1);
  o.filter.sections = {"B1/0001"};
  EXPECT_OK(Loader::Start(shared_reader_, o).status());
  o.filter.sections = {"B1/0001", "B1/0002"};
  const Status section = Loader::Start(shared_reader_, o).status();
  EXPECT_EQ(section.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(section.message().find("'B1/0002'"), std::string::npos) << section.ToString();
  o.filter.sections.clear();
  o.filter.brains = {"B2"};
  const Status brain = Loader::Start(shared_reader_, o).status();
  EXPECT_NE(brain.message().find("'B2'"), std::string::npos) << brain.ToString();
}

TEST_F(LoaderRun, BatchesCarryTheirLabelsPointsAndAugmentations) {
  auto loader = testing::ValueOrDie(Loader::Start(shared_reader_, Options(2)));
  auto batch = testing::ValueOrDie(loader->Next());
  ASSERT_TRUE(batch);
  const IndexTable& index = *shared_reader_->index();
  for (int64_t j = 0; j < batch->size; ++j) {
    const size_t row = size_t(batch->rows[size_t(j)]);
    EXPECT_EQ(batch->mni[size_t(3 * j)], index.mni_x[row]);
    EXPECT_EQ(batch->mni[size_t(3 * j + 1)], index.mni_y[row]);
    EXPECT_EQ(batch->mni[size_t(3 * j + 2)], index.mni_z[row]);
    EXPECT_EQ(batch->area[size_t(j)], index.area[row]);
    EXPECT_EQ(batch->layer[size_t(j)], index.layer[row]);
    EXPECT_EQ(batch->hemisphere[size_t(j)], index.hemisphere[row]);
    const AugmentationParams expected = DrawAugmentation(11, 0, batch->positions[size_t(j)], {});
    const AugmentationParams& got = batch->augmentation[size_t(j)];
    EXPECT_EQ(got.theta, expected.theta);
    EXPECT_EQ(got.shift_mm, expected.shift_mm);
    EXPECT_EQ(got.shift_direction, expected.shift_direction);
    EXPECT_EQ(got.mirror, expected.mirror);
    EXPECT_EQ(got.alpha, expected.alpha);
    EXPECT_EQ(got.beta, expected.beta);
    EXPECT_EQ(got.gamma, expected.gamma);
    EXPECT_EQ(got.filter, expected.filter);
    EXPECT_EQ(got.sigma, expected.sigma);
    EXPECT_EQ(got.delta, expected.delta);
    // The image is the reader's patch with those parameters.
    std::vector<uint8_t> patch(24 * 24);
    ASSERT_OK(shared_reader_->ReadRow(int64_t(row), 0, 24, expected, patch.data()));
    EXPECT_TRUE(std::equal(patch.begin(), patch.end(), batch->images + j * 24 * 24));
  }
}

TEST_F(LoaderRun, ACorruptChunkStopsWithItsNameOrIsSkippedAndCounted) {
  // Garble every stored shard of the section's level 0.
  const std::vector<std::string> shards = testing::ValueOrDie(kvstore_->List("sections/B1/0001/0/c/"));
  for (const std::string& key : shards) {
    Bytes garbage(**kvstore_->Get(key));
    for (size_t i = 0; i + 64 < garbage.size(); i += 97) garbage[i] ^= 0x5a;
    ASSERT_OK(kvstore_->Put(key, garbage));
  }
  auto reader = testing::ValueOrDie(PatchReader::Open(kvstore_, std::make_shared<StoreContext>()));
  LoaderOptions stop = Options(2);
  auto loader = testing::ValueOrDie(Loader::Start(std::shared_ptr<const PatchReader>(std::move(reader)), stop));
  auto first = loader->Next();
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.status().message().find("B1/0001 point"), std::string::npos) << first.status().ToString();
  EXPECT_NE(first.status().message().find("sections/B1/0001/0/c/"), std::string::npos) << first.status().ToString();
  EXPECT_EQ(testing::ValueOrDie(loader->Next()), nullptr);  // the loader has ended

  LoaderOptions skip = Options(2);
  skip.on_error = ErrorPolicy::kSkip;
  skip.end_epoch = 1;
  auto skipping = testing::ValueOrDie(
      Loader::Start(testing::ValueOrDie(PatchReader::Open(kvstore_, std::make_shared<StoreContext>())), skip));
  int64_t skipped = 0, batches = 0;
  while (auto batch = testing::ValueOrDie(skipping->Next())) {
    ++batches;
    skipped += batch->skipped;
    for (int64_t j = 0; j < batch->size; ++j) {
      if (!batch->valid[size_t(j)]) {
        EXPECT_EQ(batch->images[j * 24 * 24], 255);
      }
    }
  }
  EXPECT_EQ(batches, 15);
  EXPECT_GT(skipped, 0);
}

}  // namespace
}  // namespace cytonet
