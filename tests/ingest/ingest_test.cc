// Unit tests of ingest/: the 2×2 rule, the phantom, slide readers and writers, the pyramid
// writer, study and transform files, and resumable section ingest.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <tiffio.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <random>

#include "ingest/downsample.h"
#include "ingest/ingest_job.h"
#include "ingest/phantom.h"
#include "ingest/points_csv.h"
#include "ingest/pyramid_writer.h"
#include "ingest/section_transform.h"
#include "ingest/slide_reader.h"
#include "ingest/slide_writer.h"
#include "ingest/study.h"
#include "store/group.h"
#include "tests/store/test_util.h"

namespace cytonet {
namespace {

using testing::TempDir;

// The rule of downsample.h written out the slow way: mean of the in-image pixels of each
// 2×2 block, rounded half up.
std::vector<uint8_t> ReferenceDownsample(const std::vector<uint8_t>& src, int64_t h, int64_t w) {
  const int64_t oh = (h + 1) / 2, ow = (w + 1) / 2;
  std::vector<uint8_t> out(size_t(oh * ow));
  for (int64_t y = 0; y < oh; ++y) {
    for (int64_t x = 0; x < ow; ++x) {
      int sum = 0, n = 0;
      for (int64_t dy = 0; dy < 2; ++dy) {
        for (int64_t dx = 0; dx < 2; ++dx) {
          if (2 * y + dy < h && 2 * x + dx < w) sum += src[size_t((2 * y + dy) * w + 2 * x + dx)], ++n;
        }
      }
      out[size_t(y * ow + x)] = uint8_t((2 * sum + n) / (2 * n));  // round half up
    }
  }
  return out;
}

std::vector<uint8_t> RandomImage(int64_t h, int64_t w, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> image(size_t(h * w));
  for (auto& v : image) v = uint8_t(rng());
  return image;
}

TEST(Downsample2x2, MatchesTheRuleOnOddAndEvenSizes) {
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 2}, {3, 5}, {17, 10}, {64, 63}}) {
    const auto src = RandomImage(h, w, uint32_t(h * 100 + w));
    std::vector<uint8_t> out(size_t(HalfCeil(h) * HalfCeil(w)), 0);
    Downsample2x2(src.data(), h, w, w, out.data(), HalfCeil(w));
    EXPECT_EQ(out, ReferenceDownsample(src, h, w)) << h << "×" << w;
  }
  // Half-up rounding: (1+2+2+2)/4 = 1.75 → 2, (0+0+1+1)/4 = 0.5 → 1.
  const uint8_t a[4] = {1, 2, 2, 2}, b[4] = {0, 1, 0, 1};
  uint8_t out = 0;
  Downsample2x2(a, 2, 2, 2, &out, 1);
  EXPECT_EQ(out, 2);
  Downsample2x2(b, 2, 2, 2, &out, 1);
  EXPECT_EQ(out, 1);
}

// ------------------------------------------------------------------------- phantom

struct PhantomFixture {
  phantom::PhantomOptions options;
  std::unique_ptr<phantom::PhantomAtlas> atlas;
  std::unique_ptr<phantom::PhantomBrain> brain;
  std::vector<phantom::SectionSpec> specs;
  explicit PhantomFixture(int64_t width = 1024, int64_t height = 768) {
    options.width = width;
    options.height = height;
    options.num_brains = 1;
    options.sections_per_brain = 2;
    atlas = std::make_unique<phantom::PhantomAtlas>(options.seed, options.areas_per_hemisphere);
    brain = std::make_unique<phantom::PhantomBrain>(*atlas, options.seed, 0);
    specs = phantom::PlanStudy(options);
  }
};

TEST(Phantom, RegionsRenderTheSameWhateverTheTiling) {
  PhantomFixture f;
  const phantom::SectionRenderer renderer(*f.brain, f.specs[0]);
  const int64_t y0 = 200, x0 = 300, h = 181, w = 237;
  std::vector<uint8_t> whole(size_t(h * w)), tiled(size_t(h * w));
  renderer.Render(y0, x0, h, w, whole.data());
  for (int64_t ty : {int64_t(0), int64_t(70)}) {
    for (int64_t tx : {int64_t(0), int64_t(101)}) {
      const int64_t th = ty == 0 ? 70 : h - 70, tw = tx == 0 ? 101 : w - 101;
      std::vector<uint8_t> part(size_t(th * tw));
      renderer.Render(y0 + ty, x0 + tx, th, tw, part.data());
      for (int64_t r = 0; r < th; ++r) std::copy_n(&part[r * tw], tw, &tiled[(ty + r) * w + tx]);
    }
  }
  EXPECT_EQ(whole, tiled);
  // A second renderer of the same spec (another process, say) gives the same pixels.
  const phantom::SectionRenderer again(*f.brain, f.specs[0]);
  std::vector<uint8_t> repeat(size_t(h * w));
  again.Render(y0, x0, h, w, repeat.data());
  EXPECT_EQ(whole, repeat);
}

TEST(Phantom, SectionHasTissueOnBackgroundAndPointsOnTheMidline) {
  PhantomFixture f;
  const phantom::SectionRenderer renderer(*f.brain, f.specs[0]);
  std::vector<uint8_t> image(size_t(f.options.width * f.options.height));
  renderer.Render(0, 0, f.options.height, f.options.width, image.data());
  const double background = double(std::count(image.begin(), image.end(), 255)) / double(image.size());
  EXPECT_GT(background, 0.2);  // slide around the brain
  EXPECT_LT(background, 0.8);  // and a brain on the slide
  EXPECT_EQ(image[0], 255);
  const auto points = renderer.MidlinePoints(f.options.point_spacing_mm);
  ASSERT_GT(points.size(), 50u);
  int displaced = 0;
  for (const auto& p : points) {
    ASSERT_GE(p.x_px, 0);
    ASSERT_LT(p.x_px, double(f.options.width));
    if (p.displaced) {
      ++displaced;
      continue;
    }
    const phantom::TissuePoint t = renderer.AtPixel(p.x_px, p.y_px);
    EXPECT_NEAR(t.depth, 0.5, 0.31) << "point " << p.id;
    EXPECT_EQ(t.area, p.area);
    EXPECT_GE(p.layer, 1);
    EXPECT_LE(p.layer, 6);
  }
  EXPECT_LT(displaced, int(points.size()) / 10);
}

TEST(Phantom, AreasDifferInTheirLaminarProfilesAndBorderEachOther) {
  phantom::PhantomAtlas atlas(7, 12);
  ASSERT_EQ(atlas.areas().size(), 12u);
  double min_thickness = 1e9, max_thickness = 0;
  for (const auto& a : atlas.areas()) {
    double sum = 0;
    for (double fraction : a.profile.layer_fraction) sum += fraction;
    EXPECT_NEAR(sum, 1.0, 1e-9);
    min_thickness = std::min(min_thickness, a.profile.thickness_mm);
    max_thickness = std::max(max_thickness, a.profile.thickness_mm);
  }
  EXPECT_GT(max_thickness - min_thickness, 0.3);
  const auto adjacency = atlas.Adjacency();
  EXPECT_GE(adjacency.size(), 12u);  // a partition of the sphere: every area has neighbours
  for (auto [a, b] : adjacency) EXPECT_LT(a, b);
}

TEST(Phantom, LayerMaskAgreesWithTheImage) {
  PhantomFixture f;
  const phantom::SectionRenderer renderer(*f.brain, f.specs[0]);
  const int64_t h = f.options.height, w = f.options.width;
  std::vector<uint8_t> image(size_t(h * w)), mask(size_t(h * w));
  renderer.Render(0, 0, h, w, image.data());
  renderer.RenderLayerMask(0, 0, h, w, mask.data());
  for (size_t i = 0; i < image.size(); ++i) {
    ASSERT_EQ(mask[i] == phantom::kMaskBackground, image[i] == 255) << "pixel " << i;
  }
  EXPECT_GT(std::count(mask.begin(), mask.end(), 1), 0);
  EXPECT_GT(std::count(mask.begin(), mask.end(), 6), 0);
  EXPECT_GT(std::count(mask.begin(), mask.end(), phantom::kMaskWhiteMatter), 0);
}

// ------------------------------------------------------------------------- slides

RegionSource FromImage(const std::vector<uint8_t>& image, int64_t width) {
  return [&image, width](int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) {
    for (int64_t r = 0; r < h; ++r) std::copy_n(&image[size_t((y0 + r) * width + x0)], w, out + r * w);
  };
}

std::vector<uint8_t> ReadAll(const SlideReader& reader) {
  std::vector<uint8_t> out(size_t(reader.width() * reader.height()));
  EXPECT_TRUE(reader.ReadRegion(0, 0, reader.height(), reader.width(), out.data()).ok());
  return out;
}

TEST(SlideFiles, TiledPyramidTiffRoundTripsThroughOurReader) {
  TempDir dir;
  const int64_t h = 700, w = 900;
  const auto image = RandomImage(h, w, 3);
  TiffWriteOptions options;
  options.tile_size = 256;
  options.pixel_size_um = 0.5;
  const std::string path = dir.path() + "/slide.tif";
  ASSERT_OK(WriteTiledTiff(path, w, h, FromImage(image, w), options));
  auto reader = testing::ValueOrDie(OpenSlideFile(path));
  EXPECT_EQ(reader->width(), w);
  EXPECT_EQ(reader->height(), h);
  EXPECT_NEAR(*reader->pixel_size_um(), 0.5, 1e-4);
  EXPECT_EQ(reader->block_rows(), 256);
  EXPECT_EQ(ReadAll(*reader), image);
  std::vector<uint8_t> part(size_t(33 * 301));
  ASSERT_OK(reader->ReadRegion(250, 500, 33, 301, part.data()));
  for (int64_t r = 0; r < 33; ++r) {
    ASSERT_TRUE(std::equal(part.begin() + r * 301, part.begin() + (r + 1) * 301, image.begin() + (250 + r) * w + 500));
  }
  // The reduced-resolution directories hold the 2×2 means.
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  ASSERT_NE(tif, nullptr);
  EXPECT_EQ(TIFFNumberOfDirectories(tif), 3);  // 900 → 450 → 225 (fits one 256 tile)
  ASSERT_TRUE(TIFFSetDirectory(tif, 1));
  uint32_t w1 = 0;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w1);
  EXPECT_EQ(w1, 450u);
  std::vector<uint8_t> tile(256 * 256);
  ASSERT_GT(TIFFReadEncodedTile(tif, 0, tile.data(), tmsize_t(tile.size())), 0);
  const auto level1 = ReferenceDownsample(image, h, w);
  for (int r = 0; r < 256; ++r)
    ASSERT_TRUE(std::equal(tile.begin() + r * 256, tile.begin() + (r + 1) * 256, level1.begin() + r * 450));
  TIFFClose(tif);
  // Outside the image is a clear error.
  EXPECT_EQ(reader->ReadRegion(690, 0, 20, 10, part.data()).code(), StatusCode::kOutOfRange);
}

TEST(SlideFiles, StripedRgbTiffReadsAsLuma) {
  TempDir dir;
  const std::string path = dir.path() + "/rgb.tif";
  const int64_t h = 50, w = 40;
  const auto rgb = RandomImage(h, w * 3, 9);
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(w));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(h));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 7);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
  for (int64_t r = 0; r < h; ++r)
    ASSERT_EQ(TIFFWriteScanline(tif, const_cast<uint8_t*>(&rgb[r * w * 3]), uint32_t(r)), 1);
  TIFFClose(tif);
  auto reader = testing::ValueOrDie(OpenSlideFile(path));
  const auto grey = ReadAll(*reader);
  for (int64_t i = 0; i < h * w; ++i) {
    const int expected = (299 * rgb[i * 3] + 587 * rgb[i * 3 + 1] + 114 * rgb[i * 3 + 2] + 500) / 1000;
    ASSERT_EQ(grey[size_t(i)], expected) << "pixel " << i;
  }
}

// Writes an 8-bit TIFF with libtiff directly (striped, `rows_per_strip`).
void WriteStripedTiff(const std::string& path, int64_t h, int64_t w, int samples, uint16_t photometric,
                      uint32_t rows_per_strip, uint16_t compression, const std::vector<uint8_t>& pixels,
                      bool alpha = false) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(tif, nullptr);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(w));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(h));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, samples);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, photometric);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rows_per_strip);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, compression);
  if (alpha) {
    const uint16_t extra[1] = {EXTRASAMPLE_UNASSALPHA};
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, extra);
  }
  if (compression == COMPRESSION_JPEG) {
    TIFFSetField(tif, TIFFTAG_JPEGQUALITY, 95);
    if (photometric == PHOTOMETRIC_YCBCR) TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  }
  for (int64_t r = 0; r < h; ++r) {
    ASSERT_EQ(TIFFWriteScanline(tif, const_cast<uint8_t*>(&pixels[size_t(r * w * samples)]), uint32_t(r)), 1);
  }
  TIFFClose(tif);
}

TEST(SlideFiles, OneStripForTheWholeImageIsReadByScanlineInAnyOrder) {
  TempDir dir;
  const int64_t h = 3000, w = 7500;
  const auto image = RandomImage(h, w * 3, 21);  // RGB in one 67 MB strip: read line by line
  const std::string path = dir.path() + "/one-strip.tif";
  WriteStripedTiff(path, h, w, 3, PHOTOMETRIC_RGB, uint32_t(h), COMPRESSION_LZW, image);
  auto reader = testing::ValueOrDie(OpenSlideFile(path));
  EXPECT_EQ(reader->block_rows(), 1);
  EXPECT_NE(reader->Describe().find("scanline"), std::string::npos);
  auto expect_rows = [&](int64_t y0, int64_t rows) {
    std::vector<uint8_t> out(size_t(rows * 50));
    ASSERT_OK(reader->ReadRegion(y0, 100, rows, 50, out.data()));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < 50; ++c) {
        const uint8_t* p = &image[size_t(((y0 + r) * w + 100 + c) * 3)];
        // BT.601 luma rounded half up, from its definition (not the code under test).
        const int scaled = 299 * p[0] + 587 * p[1] + 114 * p[2];
        ASSERT_EQ(out[size_t(r * 50 + c)], scaled / 1000 + (scaled % 1000 >= 500)) << "row " << y0 + r;
      }
    }
  };
  expect_rows(2000, 10);
  expect_rows(10, 5);  // earlier rows: starts over
  expect_rows(2990, 10);
}

TEST(SlideFiles, JpegYcbcrAndTransparentRgbaReadLikeOpenSlideWould) {
  TempDir dir;
  const int64_t h = 64, w = 64;
  std::vector<uint8_t> rgb(size_t(h * w * 3));
  for (int64_t i = 0; i < h * w; ++i) {
    const uint8_t v = uint8_t(40 + (i % w) * 3);
    rgb[size_t(3 * i)] = rgb[size_t(3 * i + 1)] = rgb[size_t(3 * i + 2)] = v;  // smooth grey ramp
  }
  const std::string jpeg = dir.path() + "/ycbcr.tif";
  WriteStripedTiff(jpeg, h, w, 3, PHOTOMETRIC_YCBCR, 16, COMPRESSION_JPEG, rgb);
  auto reader = testing::ValueOrDie(OpenSlideFile(jpeg, {SlideFormat::kTiff}));
  // Read twice in parallel pieces: every pooled handle must decode to RGB alike.
  for (int round = 0; round < 2; ++round) {
    const auto grey = ReadAll(*reader);
    for (int64_t i = 0; i < h * w; ++i) ASSERT_NEAR(grey[size_t(i)], rgb[size_t(3 * i)], 4) << "pixel " << i;
  }
  std::vector<uint8_t> rgba(size_t(h * w * 4), 200);
  for (int64_t i = 0; i < h * w; ++i) rgba[size_t(4 * i + 3)] = i % 2 ? 255 : 0;
  const std::string transparent = dir.path() + "/rgba.tif";
  WriteStripedTiff(transparent, h, w, 4, PHOTOMETRIC_RGB, 8, COMPRESSION_NONE, rgba, /*alpha=*/true);
  const auto grey = ReadAll(*testing::ValueOrDie(OpenSlideFile(transparent)));
  EXPECT_EQ(grey[0], 255);  // alpha 0: slide background
  EXPECT_EQ(grey[1], 200);
}

TEST(SlideFiles, Hdf5RoundTripsAndNamesMissingDatasets) {
  TempDir dir;
  const int64_t h = 300, w = 257;
  const auto image = RandomImage(h, w, 4);
  const std::string path = dir.path() + "/slide.h5";
  Hdf5WriteOptions options;
  options.chunk_size = 64;
  options.pixel_size_um = 2.0;
  ASSERT_OK(WriteHdf5Image(path, w, h, FromImage(image, w), options));
  auto reader = testing::ValueOrDie(OpenSlideFile(path));
  EXPECT_EQ(*reader->pixel_size_um(), 2.0);
  EXPECT_EQ(ReadAll(*reader), image);
  auto missing = OpenSlideFile(path, {SlideFormat::kHdf5, "nope"});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

TEST(SlideFiles, MissingTruncatedAndForeignFilesAreClearErrors) {
  TempDir dir;
  auto missing = OpenSlideFile(dir.path() + "/absent.tif");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("absent.tif"), std::string::npos);

  const int64_t h = 512, w = 512;
  const auto image = RandomImage(h, w, 5);
  const std::string path = dir.path() + "/cut.tif";
  TiffWriteOptions options;
  options.tile_size = 128;
  options.pyramid = false;
  ASSERT_OK(WriteTiledTiff(path, w, h, FromImage(image, w), options));
  // Cut the file inside its tile data (the directory sits at the end, so keep that part:
  // zero the middle instead, as a damaged disk would).
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(1000);
    const std::string zeros(60000, '\xff');
    file.write(zeros.data(), std::streamsize(zeros.size()));
  }
  auto reader = OpenSlideFile(path);
  if (reader.ok()) {
    std::vector<uint8_t> out(size_t(h * w));
    const Status read = (*reader)->ReadRegion(0, 0, h, w, out.data());
    EXPECT_FALSE(read.ok());
    EXPECT_NE(read.message().find(path), std::string::npos) << read.ToString();
  } else {
    EXPECT_NE(reader.status().message().find(path), std::string::npos);
  }

  const std::string text = dir.path() + "/notes.txt";
  std::ofstream(text) << "not a slide";
  auto foreign = OpenSlideFile(text);
  EXPECT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("notes.txt"), std::string::npos);
}

// ------------------------------------------------------------------------- pyramid

TEST(PyramidWriter, LevelsHoldTheImageAndItsTwoByTwoMeans) {
  auto kvstore = NewMemoryKvStore();
  const int64_t h = 1000, w = 1300;
  // Background (the fill value) with a textured disc, so some chunks are skipped.
  std::vector<uint8_t> image(size_t(h * w), 255);
  std::mt19937 rng(11);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      if ((y - 500) * (y - 500) + (x - 600) * (x - 600) < 300 * 300) image[size_t(y * w + x)] = uint8_t(rng() % 200);
    }
  }
  PyramidOptions options;
  options.shard_size = 256;
  options.chunk_size = 64;
  auto writer = testing::ValueOrDie(PyramidWriter::Create(kvstore, "img", h, w, options));
  EXPECT_EQ(writer->num_levels(), 4);  // 1300 → 650 → 325 → 163 (fits a shard)
  EXPECT_EQ(writer->AppendRows(image.data(), 10, w).code(), StatusCode::kInvalidArgument);
  for (int64_t y = 0; y < h; y += 64)
    ASSERT_OK(writer->AppendRows(&image[size_t(y * w)], std::min<int64_t>(64, h - y), w));
  ASSERT_OK(writer->FinishLevels());
  ASSERT_OK(writer->WriteGroup({{"note", 1}}));

  auto image_group = testing::ValueOrDie(OpenMultiscaleImage(kvstore, "img", std::make_shared<StoreContext>()));
  ASSERT_EQ(image_group.levels.size(), 4u);
  EXPECT_EQ(image_group.group.attributes["note"], 1);
  std::vector<uint8_t> expected = image;
  int64_t eh = h, ew = w;
  for (size_t k = 0; k < 4; ++k) {
    auto got = testing::ValueOrDie(image_group.levels[k]->Read(image_group.levels[k]->domain()));
    ASSERT_EQ(std::vector<uint8_t>(got.begin(), got.end()), expected) << "level " << k;
    EXPECT_DOUBLE_EQ(image_group.multiscale.levels[k].scale[0], double(1 << k));
    expected = ReferenceDownsample(expected, eh, ew);
    eh = HalfCeil(eh), ew = HalfCeil(ew);
  }
  const auto& stats = writer->stats();
  EXPECT_GT(stats[0].chunks_skipped, 0);
  EXPECT_GT(stats[0].chunks_stored, 0);
  // Level 0 has 4×6 shards; those that hold no tissue are not stored.
  EXPECT_LT(stats[0].shards_stored, 24);
  EXPECT_EQ(int64_t(kvstore->List("img/0/c/")->size()), stats[0].shards_stored);
}

// ------------------------------------------------------------------------- files

TEST(TransformFile, RoundTripsAndRejectsMalformedFiles) {
  SectionTransform t;
  t.affine = {0.1, 0.0, -70, 0.001, 0.002, -20, 0.0, -0.1, 80};
  DisplacementField d;
  d.nodes_x = 2, d.nodes_y = 2, d.spacing_px_x = 100, d.spacing_px_y = 50;
  d.values_mm = {0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 2, 3};
  t.displacement = d;
  auto parsed = testing::ValueOrDie(ParseTransform(TransformToJson(t), "t"));
  const Vec3 p = parsed.Apply(50, 25);  // the middle: the mean of the four nodes
  EXPECT_NEAR(p.x, 0.1 * 50 - 70 + 0.5, 1e-12);
  EXPECT_NEAR(p.y, 0.001 * 50 + 0.002 * 25 - 20 + 1.0, 1e-12);
  EXPECT_NEAR(p.z, -0.1 * 25 + 80 + 0.75, 1e-12);
  const Vec3 beyond = parsed.Apply(1000, -10);  // clamped to node (0, 1)
  EXPECT_NEAR(beyond.x - (0.1 * 1000 - 70), 1.0, 1e-12);

  Json bad = TransformToJson(t);
  bad["affine"][1] = {1, 2};
  EXPECT_EQ(ParseTransform(bad, "f.json").status().code(), StatusCode::kCorruption);
  bad = TransformToJson(t);
  bad["displacement"]["values_mm"].erase(0);
  EXPECT_NE(ParseTransform(bad, "f.json").status().message().find("values_mm"), std::string::npos);
  bad = TransformToJson(t);
  bad["extra"] = 1;
  EXPECT_NE(ParseTransform(bad, "f.json").status().message().find("extra"), std::string::npos);
  TempDir dir;
  std::ofstream(dir.path() + "/broken.json") << "{\"cytonet_transform\": 1, \"affine\": [";
  auto broken = ReadTransformFile(dir.path() + "/broken.json");
  EXPECT_EQ(broken.status().code(), StatusCode::kCorruption);
  EXPECT_NE(broken.status().message().find("broken.json"), std::string::npos);
}

TEST(StudyFile, ResolvesPathsAndRejectsBadEntries) {
  TempDir dir;
  const std::string path = dir.path() + "/study.json";
  std::ofstream(path) << R"({"cytonet_study": 1, "pixel_size_um": 1.0, "sections": [
      {"brain": "B01", "section": "0001", "image": "B01/0001.tif", "width": 10, "height": 20}]})";
  auto study = testing::ValueOrDie(ReadStudy(path));
  ASSERT_EQ(study.sections.size(), 1u);
  EXPECT_EQ(study.sections[0].image, dir.path() + "/B01/0001.tif");
  EXPECT_EQ(*study.sections[0].height, 20);
  for (const std::string& text :
       {std::string(R"({"cytonet_study": 1, "sections": [{"brain": "B01", "section": "0001", "image": "a"},
                                                        {"brain": "B01", "section": "0001", "image": "b"}]})"),
        std::string(R"({"cytonet_study": 1, "sections": [{"brain": "../x", "section": "0001", "image": "a"}]})"),
        std::string(R"({"cytonet_study": 1, "sections": [{"brain": "B01", "section": "0001"}]})"),
        std::string(
            R"({"cytonet_study": 1, "sections": [{"brain": "B01", "section": "1", "image": "a", "colour": 1}]})"),
        std::string(R"({"cytonet_study": 1, "sections": [)")}) {
    std::ofstream(path) << text;
    auto bad = ReadStudy(path);
    EXPECT_FALSE(bad.ok()) << text;
    EXPECT_NE(bad.status().message().find("study.json"), std::string::npos) << bad.status().ToString();
  }
}

TEST(PointsCsv, ParsesByHeaderNameAndRejectsBadFieldsWithTheirLine) {
  auto points =
      testing::ValueOrDie(ParsePointsCsv("y_px,extra,x_px,hemisphere,layer\n2.5,z,1.5,R,3\n7,z,nan,L,0\n", "p.csv"));
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].x_px, 1.5);
  EXPECT_EQ(points[0].y_px, 2.5);
  EXPECT_EQ(points[0].hemisphere, 1);
  EXPECT_EQ(points[0].layer, 3);
  EXPECT_EQ(points[1].id, 1);  // no point_id column: the row number
  EXPECT_TRUE(std::isnan(points[1].x_px));
  // Windows line ends: the last column is still found.
  auto crlf = testing::ValueOrDie(ParsePointsCsv("x_px,y_px,hemisphere\r\n1,2,L\r\n\r\n", "p.csv"));
  ASSERT_EQ(crlf.size(), 1u);
  EXPECT_EQ(crlf[0].hemisphere, 0);
  for (const auto& [text, needle] :
       std::vector<std::pair<std::string, std::string>>{{"x_px,y_px,layer\n1,2,3\n1,2,300\n", "line 3: layer '300'"},
                                                        {"x_px,y_px,area\n1,2,1.5\n", "line 2: area '1.5'"},
                                                        {"x_px,y_px,point_id\n1,2,-1\n", "line 2: point_id '-1'"},
                                                        {"x_px,y_px\n1,abc\n", "line 2: y_px 'abc'"},
                                                        {"x_px,y_px\n1\n", "line 2: 1 fields"},
                                                        {"x,y\n1,2\n", "needs x_px and y_px"},
                                                        {"", "empty file"}}) {
    auto bad = ParsePointsCsv(text, "p.csv");
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_NE(bad.status().message().find(needle), std::string::npos) << bad.status().ToString();
    EXPECT_NE(bad.status().message().find("p.csv"), std::string::npos);
  }
}

// ------------------------------------------------------------------------- ingest

class SectionIngest : public ::testing::Test {
 protected:
  void SetUp() override {
    kvstore_ = testing::ValueOrDie(OpenFileKvStore(dir_.path() + "/dataset", /*create=*/true));
    ASSERT_OK(PrepareDataset(*kvstore_));
    options_.pyramid.shard_size = 256;
    options_.pyramid.chunk_size = 64;
    options_.progress = false;
  }
  StudySection WriteSlide(const std::string& section, int64_t h, int64_t w, uint32_t seed) {
    images_[section] = RandomImage(h, w, seed);
    StudySection s;
    s.brain = "B01";
    s.section = section;
    s.image = dir_.path() + "/" + section + ".tif";
    s.pixel_size_um = 1.0;
    TiffWriteOptions tiff;
    tiff.tile_size = 128;
    EXPECT_OK(WriteTiledTiff(s.image, w, h, FromImage(images_[section], w), tiff));
    return s;
  }
  TempDir dir_;
  std::shared_ptr<KvStore> kvstore_;
  IngestOptions options_;
  std::map<std::string, std::vector<uint8_t>> images_;
};

TEST_F(SectionIngest, IngestsSkipsWhenCompleteAndRedoesWhenInputOrSettingsChange) {
  StudySection s = WriteSlide("0001", 300, 500, 1);
  SectionOutcome first = IngestSection(kvstore_, s, options_);
  ASSERT_EQ(first.state, SectionState::kIngested) << first.error.ToString();
  EXPECT_TRUE(*SectionComplete(*kvstore_, "B01", "0001"));
  auto level0 = testing::ValueOrDie(ZarrArray::Open(kvstore_, "sections/B01/0001/0", std::make_shared<StoreContext>()));
  auto pixels = testing::ValueOrDie(level0->Read(level0->domain()));
  EXPECT_EQ(std::vector<uint8_t>(pixels.begin(), pixels.end()), images_["0001"]);

  EXPECT_EQ(IngestSection(kvstore_, s, options_).state, SectionState::kSkipped);
  options_.pyramid.chunk_size = 128;  // other settings: redone
  EXPECT_EQ(IngestSection(kvstore_, s, options_).state, SectionState::kIngested);
  EXPECT_EQ(IngestSection(kvstore_, s, options_).state, SectionState::kSkipped);
  s = WriteSlide("0001", 300, 500, 2);  // new input file: redone
  EXPECT_EQ(IngestSection(kvstore_, s, options_).state, SectionState::kIngested);
  options_.force = true;
  EXPECT_EQ(IngestSection(kvstore_, s, options_).state, SectionState::kIngested);
}

TEST_F(SectionIngest, FailuresNameTheInputAndLeaveTheSectionIncomplete) {
  StudySection missing;
  missing.brain = "B01", missing.section = "0002", missing.image = dir_.path() + "/gone.tif";
  SectionOutcome o = IngestSection(kvstore_, missing, options_);
  EXPECT_EQ(o.state, SectionState::kFailed);
  EXPECT_NE(o.error.message().find("gone.tif"), std::string::npos) << o.error.ToString();
  EXPECT_NE(o.error.message().find("B01/0002"), std::string::npos);

  StudySection wrong_size = WriteSlide("0003", 100, 120, 3);
  wrong_size.width = 121;
  o = IngestSection(kvstore_, wrong_size, options_);
  EXPECT_EQ(o.state, SectionState::kFailed);
  EXPECT_NE(o.error.message().find("0003.tif"), std::string::npos) << o.error.ToString();
  EXPECT_FALSE(*SectionComplete(*kvstore_, "B01", "0003"));

  StudySection no_pixel_size = WriteSlide("0004", 100, 120, 4);
  no_pixel_size.pixel_size_um.reset();  // the TIFF carries one: fine
  EXPECT_EQ(IngestSection(kvstore_, no_pixel_size, options_).state, SectionState::kIngested);

  Study study;
  study.sections = {missing, wrong_size, no_pixel_size};
  ASSERT_OK(FinalizeDataset(*kvstore_, study));
  auto root = testing::ValueOrDie(ReadNode(*kvstore_, ""));
  EXPECT_EQ(root.attributes["cytonet"]["brains"], Json::parse(R"([{"name": "B01", "sections": ["0004"]}])"));
}

TEST_F(SectionIngest, RedoingASectionRemovesWhatAnInterruptedRunLeft) {
  StudySection s = WriteSlide("0005", 300, 300, 5);
  ASSERT_EQ(IngestSection(kvstore_, s, options_).state, SectionState::kIngested);
  // What a killed run leaves: a temporary shard, a stale shard of old settings, and no
  // group zarr.json.
  ASSERT_OK(kvstore_->Put("sections/B01/0005/7/c/0/0", AsBytes("stale level")));
  std::ofstream(dir_.path() + "/dataset/sections/B01/0005/0/c/0/0.tmp.999.1") << "torn";
  ASSERT_OK(kvstore_->Erase("sections/B01/0005/zarr.json"));
  EXPECT_FALSE(*SectionComplete(*kvstore_, "B01", "0005"));
  ASSERT_EQ(IngestSection(kvstore_, s, options_).state, SectionState::kIngested);
  EXPECT_FALSE(kvstore_->Get("sections/B01/0005/7/c/0/0")->has_value());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/dataset/sections/B01/0005/0/c/0/0.tmp.999.1"));
}

// The writer holds one band per level and one row of shards' encoded chunks, whatever the
// image's height: a 16× taller image of the same width peaks at about the same bytes, and
// both stay under the documented bound.
TEST(PyramidWriter, MemoryDoesNotGrowWithImageHeight) {
  PyramidOptions options;
  options.shard_size = 256;
  options.chunk_size = 64;
  const int64_t w = 1024;
  auto peak_for = [&](int64_t h) {
    auto kvstore = NewMemoryKvStore();
    auto writer = testing::ValueOrDie(PyramidWriter::Create(kvstore, "img", h, w, options));
    std::mt19937 rng(5);
    std::vector<uint8_t> band(size_t(64 * w));
    for (int64_t y = 0; y < h; y += 64) {
      for (uint8_t& v : band) v = uint8_t(rng() % 250);  // noise: encoded chunks as large as they get
      EXPECT_OK(writer->AppendRows(band.data(), std::min<int64_t>(64, h - y), w));
    }
    EXPECT_OK(writer->FinishLevels());
    return writer->peak_buffered_bytes();
  };
  const int64_t short_peak = peak_for(512), tall_peak = peak_for(8192);
  const int64_t bound = PyramidWriter::PeakBytesBound(w, options, /*threads=*/0);
  EXPECT_GT(short_peak, 64 * w);  // at least level 0's band: the accounting is real
  EXPECT_LE(tall_peak, bound);
  EXPECT_LE(tall_peak, short_peak + short_peak / 4) << "short " << short_peak << ", tall " << tall_peak;
}

}  // namespace
}  // namespace cytonet
