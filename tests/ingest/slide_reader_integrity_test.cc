// Integrity of what the slide readers take from a file: damaged strip/tile tables are
// errors (not junk pixels), pixel sizes come from the metadata scanners write and
// implausible ones count as absent, and input paths that are directories are errors, not
// aborts. The input files are written here with libtiff and patched where a test needs
// damage.
#include <gtest/gtest.h>
#include <tiffio.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include "ingest/ingest_job.h"
#include "ingest/points_csv.h"
#include "ingest/section_transform.h"
#include "ingest/slide_reader.h"
#include "ingest/study.h"
#include "tests/store/test_util.h"

namespace cytonet {
namespace {

using testing::TempDir;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

struct TiffLayout {
  int64_t width = 0, height = 0;
  int samples = 1;               // 1 grey, 3 RGB
  uint32_t tile = 0;             // tile side; 0: striped
  uint32_t rows_per_strip = 16;  // when striped
  uint16_t compression = COMPRESSION_NONE;
  std::string description;   // ImageDescription, when not empty
  float xres = 0;            // XResolution (and YResolution), when > 0
  int resolution_unit = -1;  // ResolutionUnit, when >= 0
};

std::vector<uint8_t> Pattern(const TiffLayout& l) {
  std::vector<uint8_t> pixels(size_t(l.width * l.height * l.samples));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t((i * 7 + i / 97) & 0xff);
  return pixels;
}

void WriteTiff(const std::string& path, const TiffLayout& l, const std::vector<uint8_t>& pixels) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(tif, nullptr);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(l.width));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(l.height));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, l.samples);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, l.samples == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, l.compression);
  if (!l.description.empty()) TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, l.description.c_str());
  if (l.xres > 0) {
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, double(l.xres));
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, double(l.xres));
  }
  if (l.resolution_unit >= 0) TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, l.resolution_unit);
  const int64_t spp = l.samples;
  if (l.tile > 0) {
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, l.tile);
    TIFFSetField(tif, TIFFTAG_TILELENGTH, l.tile);
    std::vector<uint8_t> tile(size_t(l.tile) * l.tile * spp);
    for (int64_t ty = 0; ty < l.height; ty += l.tile) {
      for (int64_t tx = 0; tx < l.width; tx += l.tile) {
        std::fill(tile.begin(), tile.end(), uint8_t(0));
        const int64_t n = std::min<int64_t>(l.tile, l.width - tx) * spp;
        for (int64_t y = ty; y < std::min<int64_t>(ty + l.tile, l.height); ++y) {
          std::memcpy(&tile[size_t((y - ty) * l.tile * spp)], &pixels[size_t((y * l.width + tx) * spp)], size_t(n));
        }
        ASSERT_GE(TIFFWriteTile(tif, tile.data(), uint32_t(tx), uint32_t(ty), 0, 0), 0);
      }
    }
  } else {
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, l.rows_per_strip);
    for (int64_t y = 0; y < l.height; ++y) {
      ASSERT_EQ(TIFFWriteScanline(tif, const_cast<uint8_t*>(&pixels[size_t(y * l.width * spp)]), uint32_t(y), 0), 1);
    }
  }
  TIFFClose(tif);
}

// Rewrites value `index` of `tag` in the first directory of a classic little-endian TIFF
// (what libtiff writes on this host), as a damaged file would hold it.
void PatchTag(const std::string& path, uint16_t tag, uint32_t index, uint32_t value) {
  static_assert(std::endian::native == std::endian::little, "the patch reads and writes host-order integers");
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.good()) << path;
  auto read = [&](uint64_t at, int bytes) {
    uint64_t v = 0;
    file.seekg(std::streamoff(at));
    file.read(reinterpret_cast<char*>(&v), bytes);
    return v;
  };
  char order[2] = {};
  file.read(order, 2);
  ASSERT_TRUE(order[0] == 'I' && order[1] == 'I' && read(2, 2) == 42) << "not a classic little-endian TIFF";
  const uint64_t ifd = read(4, 4), entries = read(ifd, 2);
  for (uint64_t e = 0; e < entries; ++e) {
    const uint64_t entry = ifd + 2 + 12 * e;
    if (read(entry, 2) != tag) continue;
    const uint64_t type = read(entry + 2, 2), count = read(entry + 4, 4);
    const int size = type == TIFF_SHORT ? 2 : type == TIFF_LONG ? 4 : 0;
    ASSERT_NE(size, 0) << "tag " << tag << " has type " << type;
    ASSERT_LT(index, count);
    ASSERT_TRUE(size == 4 || value <= 0xffff);
    const uint64_t data = count * size <= 4 ? entry + 8 : read(entry + 8, 4);
    file.seekp(std::streamoff(data + uint64_t(index) * size));
    file.write(reinterpret_cast<const char*>(&value), size);
    ASSERT_TRUE(file.good());
    return;
  }
  FAIL() << "no tag " << tag << " in " << path;
}

std::vector<uint8_t> ReadAll(const SlideReader& reader) {
  std::vector<uint8_t> out(size_t(reader.width() * reader.height()));
  const Status status = reader.ReadRegion(0, 0, reader.height(), reader.width(), out.data());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return out;
}

// ---------------------------------------------------------------- damaged strip/tile tables

// 1024×1024 grey, four uncompressed 512×512 tiles.
TiffLayout FourTiles() {
  TiffLayout l;
  l.width = l.height = 1024;
  l.tile = 512;
  return l;
}

void WriteFourTiles(const std::string& path) {
  const TiffLayout l = FourTiles();
  ASSERT_NO_FATAL_FAILURE(WriteTiff(path, l, Pattern(l)));
}

// Makes a four-tile file's header claim 8192×6144.
void ClaimMoreThanTheFileHolds(const std::string& path) {
  ASSERT_NO_FATAL_FAILURE(PatchTag(path, TIFFTAG_IMAGEWIDTH, 0, 8192));
  ASSERT_NO_FATAL_FAILURE(PatchTag(path, TIFFTAG_IMAGELENGTH, 0, 6144));
}

// A header that claims 8192×6144 over a file holding four tiles: libtiff only warns
// ("Incorrect count for "TileOffsets"; tag ignored") and reads the missing tiles from
// offset 0. That must be an error naming the file, whichever way the file is opened.
TEST(TiffIntegrity, TileTableShorterThanTheImageIsAnError) {
  TempDir dir;
  const std::string path = dir.path() + "/claims-more.tif";
  ASSERT_NO_FATAL_FAILURE(WriteFourTiles(path));
  ASSERT_NO_FATAL_FAILURE(ClaimMoreThanTheFileHolds(path));
  for (SlideFormat format : {SlideFormat::kAuto, SlideFormat::kTiff}) {
    auto reader = OpenSlideFile(path, {format});
    ASSERT_FALSE(reader.ok()) << "opened as " << (*reader)->Describe();
    EXPECT_EQ(reader.status().code(), StatusCode::kCorruption) << reader.status().ToString();
    EXPECT_TRUE(Contains(reader.status().message(), path)) << reader.status().ToString();
    EXPECT_TRUE(Contains(reader.status().message(), "TileOffsets")) << reader.status().ToString();
  }
}

// libtiff reads an uncompressed block as its full decoded size from its offset, whatever
// its byte count says: a short count must be an error naming the file and the block.
TEST(TiffIntegrity, UncompressedTileShorterThanItsSizeIsAnError) {
  TempDir dir;
  const std::string path = dir.path() + "/short-tile.tif";
  ASSERT_NO_FATAL_FAILURE(WriteFourTiles(path));
  ASSERT_NO_FATAL_FAILURE(PatchTag(path, TIFFTAG_TILEBYTECOUNTS, 2, 1000));
  auto reader = OpenSlideFile(path);
  ASSERT_FALSE(reader.ok()) << "opened as " << (*reader)->Describe();
  EXPECT_EQ(reader.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(Contains(reader.status().message(), path)) << reader.status().ToString();
  EXPECT_TRUE(Contains(reader.status().message(), "tile 2 (row 512, column 0)")) << reader.status().ToString();
  EXPECT_TRUE(Contains(reader.status().message(), "1000 bytes")) << reader.status().ToString();
}

TEST(TiffIntegrity, UncompressedStripShorterThanItsSizeIsAnError) {
  TempDir dir;
  TiffLayout l;
  l.width = 64, l.height = 70, l.rows_per_strip = 16;  // five strips, the last one 6 rows
  const auto pixels = Pattern(l);
  // The last strip is legitimately shorter: no false alarm, and the pixels are right.
  const std::string healthy = dir.path() + "/healthy.tif";
  ASSERT_NO_FATAL_FAILURE(WriteTiff(healthy, l, pixels));
  auto good = OpenSlideFile(healthy);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(ReadAll(**good), pixels);

  // libtiff does not look at the last strip's count: it reads 384 bytes from its offset,
  // past the 100 the file holds.
  const std::string path = dir.path() + "/short-strip.tif";
  ASSERT_NO_FATAL_FAILURE(WriteTiff(path, l, pixels));
  ASSERT_NO_FATAL_FAILURE(PatchTag(path, TIFFTAG_STRIPBYTECOUNTS, 4, 100));
  auto reader = OpenSlideFile(path, {SlideFormat::kTiff});
  ASSERT_FALSE(reader.ok()) << "opened as " << (*reader)->Describe();
  EXPECT_EQ(reader.status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(Contains(reader.status().message(), path)) << reader.status().ToString();
  EXPECT_TRUE(Contains(reader.status().message(), "strip 4 (rows 64-69)")) << reader.status().ToString();

  // Strips 0 and 1 differing: libtiff warns ("Wrong "StripByteCounts" field") and guesses
  // counts of its own, which is a layout warning, so an error too.
  const std::string guessed = dir.path() + "/guessed-strips.tif";
  ASSERT_NO_FATAL_FAILURE(WriteTiff(guessed, l, pixels));
  ASSERT_NO_FATAL_FAILURE(PatchTag(guessed, TIFFTAG_STRIPBYTECOUNTS, 1, 100));
  reader = OpenSlideFile(guessed, {SlideFormat::kTiff});
  ASSERT_FALSE(reader.ok()) << "opened as " << (*reader)->Describe();
  EXPECT_TRUE(Contains(reader.status().message(), guessed)) << reader.status().ToString();
  EXPECT_TRUE(Contains(reader.status().message(), "StripByteCounts")) << reader.status().ToString();
}

// libtiff's messages are per handle: opening a damaged file on many threads while others
// read a healthy file through one shared reader (pooled handles, TBB threads) gives every
// open its own verdict, and no healthy read sees another file's message.
TEST(TiffIntegrity, MessagesStayWithTheirHandleAcrossThreads) {
  TempDir dir;
  const TiffLayout l = FourTiles();
  const auto pixels = Pattern(l);
  const std::string healthy = dir.path() + "/healthy.tif", damaged = dir.path() + "/damaged.tif";
  ASSERT_NO_FATAL_FAILURE(WriteTiff(healthy, l, pixels));
  ASSERT_NO_FATAL_FAILURE(WriteTiff(damaged, l, pixels));
  ASSERT_NO_FATAL_FAILURE(ClaimMoreThanTheFileHolds(damaged));
  auto shared = OpenSlideFile(healthy, {SlideFormat::kTiff});
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  const SlideReader& reader = **shared;
  std::atomic<int> wrong_opens{0}, wrong_reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 12; ++i) {
        if ((t + i) % 2 == 0) {
          auto bad = OpenSlideFile(damaged, {SlideFormat::kTiff});
          if (bad.ok() || !Contains(bad.status().message(), damaged) ||
              !Contains(bad.status().message(), "TileOffsets")) {
            ++wrong_opens;
          }
        } else {
          const int64_t y0 = (t * 97 + i * 131) % 700, x0 = (t * 53 + i * 71) % 600;
          std::vector<uint8_t> out(size_t(300 * 400));
          const Status read = reader.ReadRegion(y0, x0, 300, 400, out.data());
          bool same = read.ok();
          for (int64_t r = 0; same && r < 300; ++r) {
            same = std::equal(out.begin() + r * 400, out.begin() + (r + 1) * 400,
                              pixels.begin() + (y0 + r) * l.width + x0);
          }
          if (!same) ++wrong_reads;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong_opens.load(), 0);
  EXPECT_EQ(wrong_reads.load(), 0);
}

// ---------------------------------------------------------------- pixel size

// A 16×16 grey striped TIFF with the given metadata; its pixel size as our reader sees it.
std::optional<double> TiffPixelSizeOf(const std::string& path, const std::string& description, float xres = 0,
                                      int resolution_unit = -1) {
  TiffLayout l;
  l.width = l.height = 16;
  l.description = description;
  l.xres = xres;
  l.resolution_unit = resolution_unit;
  WriteTiff(path, l, Pattern(l));
  auto reader = OpenSlideFile(path, {SlideFormat::kTiff});
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  return reader.ok() ? (*reader)->pixel_size_um() : std::optional<double>(-1.0);
}

constexpr const char* kAperio =
    "Aperio Image Library v12.0.15\r\n16x16 [0,0 16x16] (16x16) RAW|AppMag = 20|StripeWidth = 1000|";

TEST(TiffPixelSize, AperioMppWinsOverResolutionTags) {
  TempDir dir;
  const std::string path = dir.path() + "/slide.svs";
  // What `format: auto` gives libtiff for an SVS: the MPP is only in the description
  // (here next to the 10 px/cm vips leaves behind).
  auto size = TiffPixelSizeOf(path, std::string(kAperio) + "MPP = 0.4990|Left = 25.6", 10, RESUNIT_CENTIMETER);
  ASSERT_TRUE(size.has_value());
  EXPECT_NEAR(*size, 0.499, 1e-9);
  size = TiffPixelSizeOf(path, std::string(kAperio) + "MPP = 0.2527");  // the last field, no '|' after it
  ASSERT_TRUE(size.has_value());
  EXPECT_NEAR(*size, 0.2527, 1e-9);
  EXPECT_EQ(TiffPixelSizeOf(path, std::string(kAperio) + "MPP = 1e-300|"), std::nullopt);
  EXPECT_EQ(TiffPixelSizeOf(path, std::string(kAperio) + "MPP = |"), std::nullopt);
}

TEST(TiffPixelSize, OmePhysicalSizeXInItsUnit) {
  TempDir dir;
  const std::string path = dir.path() + "/slide.ome.tif";
  auto ome = [](const std::string& pixels_attributes) {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\"><Image ID=\"Image:0\" Name=\"s\">"
           "<Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" Type=\"uint8\" SizeX=\"16\" SizeY=\"16\" SizeC=\"1\" "
           "SizeZ=\"1\" SizeT=\"1\" " +
           pixels_attributes + "><Channel ID=\"Channel:0:0\"/></Pixels></Image></OME>";
  };
  auto size = TiffPixelSizeOf(path, ome("PhysicalSizeX=\"0.325\" PhysicalSizeY=\"0.325\""));  // default unit: µm
  ASSERT_TRUE(size.has_value());
  EXPECT_NEAR(*size, 0.325, 1e-12);
  size = TiffPixelSizeOf(path, ome("PhysicalSizeXUnit=\"nm\" PhysicalSizeX=\"250\""), 10, RESUNIT_CENTIMETER);
  ASSERT_TRUE(size.has_value());
  EXPECT_NEAR(*size, 0.25, 1e-12);
  size = TiffPixelSizeOf(path, ome("PhysicalSizeX='0.5' PhysicalSizeXUnit='\u00b5m'"));
  ASSERT_TRUE(size.has_value());
  EXPECT_NEAR(*size, 0.5, 1e-12);
  EXPECT_EQ(TiffPixelSizeOf(path, ome("PhysicalSizeX=\"1\" PhysicalSizeXUnit=\"pixel\"")), std::nullopt);
  EXPECT_EQ(TiffPixelSizeOf(path, ome("PhysicalSizeX=\"0\"")), std::nullopt);
}

TEST(TiffPixelSize, ResolutionTagsNeedAUnitAndAPlausibleValue) {
  TempDir dir;
  const std::string path = dir.path() + "/res.tif";
  auto size = TiffPixelSizeOf(path, "", 50800, RESUNIT_INCH);
  ASSERT_TRUE(size.has_value());
  EXPECT_NEAR(*size, 0.5, 1e-6);
  size = TiffPixelSizeOf(path, "", 40000, RESUNIT_CENTIMETER);
  ASSERT_TRUE(size.has_value());
  EXPECT_NEAR(*size, 0.25, 1e-6);
  // vips' default when it knows no size: 10 px/cm = 1000 µm per pixel.
  EXPECT_EQ(TiffPixelSizeOf(path, "", 10, RESUNIT_CENTIMETER), std::nullopt);
  EXPECT_EQ(TiffPixelSizeOf(path, "", 50800, RESUNIT_NONE), std::nullopt);
  // No ResolutionUnit tag at all (TIFF's default unit would say inch: not trusted).
  EXPECT_EQ(TiffPixelSizeOf(path, "", 50800), std::nullopt);
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  ASSERT_NE(tif, nullptr);
  uint16_t unit = 0;
  EXPECT_EQ(TIFFGetField(tif, TIFFTAG_RESOLUTIONUNIT, &unit), 0) << "the file should have no ResolutionUnit tag";
  TIFFClose(tif);
}

// The same SVS through OpenSlide and through libtiff: the MPP agrees, and an implausible
// one is no pixel size on either path.
TEST(SlidePixelSize, OpenSlideAndLibtiffAgreeOnAperioMpp) {
  TempDir dir;
  TiffLayout l;
  l.width = l.height = 512;
  l.samples = 3;
  l.tile = 256;
  const auto pixels = Pattern(l);
  for (const auto& [mpp, expected] : std::vector<std::pair<std::string, std::optional<double>>>{
           {"0.4990", 0.499}, {"1e-300", std::nullopt}, {"0", std::nullopt}, {"250", std::nullopt}}) {
    l.description = "Aperio Image Library v12.0.15\n512x512 [0,0 512x512] (256x256) RAW|AppMag = 20|MPP = " + mpp;
    const std::string path = dir.path() + "/slide-" + mpp + ".svs";
    ASSERT_NO_FATAL_FAILURE(WriteTiff(path, l, pixels));
    for (SlideFormat format : {SlideFormat::kOpenSlide, SlideFormat::kTiff, SlideFormat::kAuto}) {
      auto reader = OpenSlideFile(path, {format});
      ASSERT_TRUE(reader.ok()) << reader.status().ToString();
      if (format == SlideFormat::kOpenSlide) {
        ASSERT_TRUE(Contains((*reader)->Describe(), "aperio")) << (*reader)->Describe();
      }
      const auto size = (*reader)->pixel_size_um();
      EXPECT_EQ(size.has_value(), expected.has_value()) << "MPP " << mpp << " via " << (*reader)->Describe();
      if (size && expected) {
        EXPECT_NEAR(*size, *expected, 1e-9) << (*reader)->Describe();
      }
    }
  }
}

// A file that states no believable size and a study that gives none: the ingest refuses
// instead of writing a dataset at 1000 µm per pixel.
TEST(SlidePixelSize, IngestRefusesAFileWithOnlyAPlaceholderResolution) {
  TempDir dir;
  TiffLayout l;
  l.width = 200, l.height = 150;
  l.tile = 128;
  l.xres = 10, l.resolution_unit = RESUNIT_CENTIMETER;
  StudySection section;
  section.brain = "B01", section.section = "0001", section.image = dir.path() + "/vips.tif";
  ASSERT_NO_FATAL_FAILURE(WriteTiff(section.image, l, Pattern(l)));
  auto kvstore = testing::ValueOrDie(OpenFileKvStore(dir.path() + "/dataset", /*create=*/true));
  ASSERT_OK(PrepareDataset(*kvstore));
  IngestOptions options;
  options.pyramid.shard_size = 256;
  options.pyramid.chunk_size = 64;
  options.progress = false;
  const SectionOutcome outcome = IngestSection(kvstore, section, options);
  EXPECT_EQ(outcome.state, SectionState::kFailed);
  EXPECT_TRUE(Contains(outcome.error.message(), "no pixel size in the file or the study")) << outcome.error.ToString();
  EXPECT_TRUE(Contains(outcome.error.message(), "vips.tif")) << outcome.error.ToString();
}

TEST(StudyPixelSize, OutsideThePlausibleRangeIsAnErrorNamingKeyAndSection) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const Json& bad : {Json(1e-300), Json(0), Json(-1.0), Json(nan), Json(1000.0), Json("0.5"),
                          Json(std::numeric_limits<double>::infinity())}) {
    Json study = {{"cytonet_study", 1},
                  {"sections", {{{"brain", "B01"}, {"section", "0001"}, {"image", "a.tif"}, {"pixel_size_um", bad}}}}};
    auto parsed = ParseStudy(study, "/data/study.json");
    ASSERT_FALSE(parsed.ok()) << "accepted pixel_size_um " << bad;
    EXPECT_TRUE(Contains(parsed.status().message(), "'pixel_size_um'")) << parsed.status().ToString();
    EXPECT_TRUE(Contains(parsed.status().message(), "B01/0001")) << parsed.status().ToString();
    EXPECT_TRUE(Contains(parsed.status().message(), "study.json")) << parsed.status().ToString();
    // The study-wide default too.
    study["sections"][0].erase("pixel_size_um");
    study["pixel_size_um"] = bad;
    parsed = ParseStudy(study, "/data/study.json");
    ASSERT_FALSE(parsed.ok()) << "accepted study-wide pixel_size_um " << bad;
    EXPECT_TRUE(Contains(parsed.status().message(), "'pixel_size_um'")) << parsed.status().ToString();
  }
  for (double good : {0.05, 0.25, 100.0}) {
    Json study = {{"cytonet_study", 1},
                  {"sections", {{{"brain", "B01"}, {"section", "0001"}, {"image", "a.tif"}, {"pixel_size_um", good}}}}};
    auto parsed = ParseStudy(study, "/data/study.json");
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed->sections[0].pixel_size_um, good);
  }
  // The same through a file: 1e-300 is valid JSON.
  TempDir dir;
  const std::string path = dir.path() + "/study.json";
  std::ofstream(path) << R"({"cytonet_study": 1, "sections": [
      {"brain": "B02", "section": "0007", "image": "a.tif", "pixel_size_um": 1e-300}]})";
  auto read = ReadStudy(path);
  ASSERT_FALSE(read.ok());
  EXPECT_TRUE(Contains(read.status().message(), "B02/0007")) << read.status().ToString();
}

// ---------------------------------------------------------------- input paths

// An ifstream that reads a directory throws std::ios_base::failure, which used to abort
// the program: each reader of a path must return an error that names it instead.
TEST(InputPaths, DirectoriesAndMissingFilesAreErrorsNamingThePath) {
  TempDir dir;
  const std::string folder = dir.path() + "/a-folder";
  std::filesystem::create_directories(folder);
  const std::string missing = dir.path() + "/absent.json";
  auto expect_directory = [&](const Status& status, const char* what) {
    EXPECT_FALSE(status.ok()) << what;
    EXPECT_TRUE(Contains(status.message(), folder)) << what << ": " << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "is a directory")) << what << ": " << status.ToString();
  };
  auto expect_missing = [&](const Status& status, const char* what) {
    EXPECT_EQ(status.code(), StatusCode::kNotFound) << what << ": " << status.ToString();
    EXPECT_TRUE(Contains(status.message(), missing)) << what << ": " << status.ToString();
    EXPECT_TRUE(Contains(status.message(), std::strerror(ENOENT))) << what << ": " << status.ToString();
  };
  expect_directory(ReadStudy(folder).status(), "study");
  expect_directory(ReadPointsCsv(folder).status(), "points");
  expect_directory(ReadTransformFile(folder).status(), "transform");
  expect_directory(OpenSlideFile(folder).status(), "slide");
  expect_directory(ReadInputFile(folder, "input").status(), "input");
  expect_missing(ReadStudy(missing).status(), "study");
  expect_missing(ReadPointsCsv(missing).status(), "points");
  expect_missing(ReadTransformFile(missing).status(), "transform");
  // Readable files still read.
  const std::string points = dir.path() + "/p.csv";
  std::ofstream(points) << "x_px,y_px\n1,2\n";
  auto parsed = ReadPointsCsv(points);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->size(), 1u);
}

}  // namespace
}  // namespace cytonet
