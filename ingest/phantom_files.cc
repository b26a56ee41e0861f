#include "ingest/phantom_files.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "ingest/section_transform.h"
#include "ingest/slide_writer.h"
#include "store/metadata.h"

namespace cytonet::phantom {
namespace {

Status WriteTextFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    file << text;
    if (!file.flush()) return IOError("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("renaming '" + tmp + "'", errno);
  return Status::Ok();
}

Json AreasJson(const PhantomAtlas& atlas) {
  Json areas = Json::array();
  for (const Area& a : atlas.areas()) {
    areas.push_back({{"id", a.id},
                     {"name", a.name},
                     {"thickness_mm", a.profile.thickness_mm},
                     {"layer_fraction", a.profile.layer_fraction},
                     {"cell_density", a.profile.cell_density},
                     {"cell_radius_um", a.profile.cell_radius_um}});
  }
  Json adjacency = Json::array();
  for (const auto& [a, b] : atlas.Adjacency()) adjacency.push_back({a, b});
  return {{"areas", areas}, {"adjacency", adjacency}, {"hemispheres", {"L", "R"}}};
}

}  // namespace

Status WritePointsCsv(const std::string& path, const std::vector<SamplingPoint>& points) {
  std::string text = "point_id,x_px,y_px,area,layer,hemisphere,displaced\n";
  char line[160];
  for (const SamplingPoint& p : points) {
    std::snprintf(line, sizeof(line), "%lld,%.3f,%.3f,%d,%d,%c,%d\n", static_cast<long long>(p.id), p.x_px, p.y_px,
                  p.area, p.layer, HemisphereLetter(p.hemisphere), p.displaced ? 1 : 0);
    text += line;
  }
  return WriteTextFile(path, text);
}

Status WritePhantomStudy(const PhantomOptions& options, const PhantomFileOptions& files, const std::string& out_dir) {
  namespace fs = std::filesystem;
  if (files.formats.empty()) return InvalidArgumentError("phantom: no slide format given");
  for (const std::string& f : files.formats) {
    if (f != "tiff" && f != "hdf5")
      return InvalidArgumentError("phantom: unknown slide format '" + f + "' (tiff, hdf5)");
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return IOError("cannot create '" + out_dir + "': " + ec.message());

  const PhantomAtlas atlas(options.seed, options.areas_per_hemisphere);
  RETURN_IF_ERROR(WriteTextFile((fs::path(out_dir) / "areas.json").string(), AreasJson(atlas).dump(1) + "\n"));
  const std::vector<SectionSpec> specs = PlanStudy(options);
  Json sections = Json::array(), masks = Json::array();
  std::vector<std::unique_ptr<PhantomBrain>> brains;
  for (int b = 0; b < options.num_brains; ++b) brains.push_back(std::make_unique<PhantomBrain>(atlas, options.seed, b));

  for (size_t i = 0; i < specs.size(); ++i) {
    const SectionSpec& spec = specs[i];
    const auto start = std::chrono::steady_clock::now();
    const SectionRenderer renderer(*brains[size_t(spec.brain_index)], spec);
    fs::create_directories(fs::path(out_dir) / spec.brain, ec);
    if (ec) return IOError("cannot create a folder in '" + out_dir + "': " + ec.message());
    const std::string stem = spec.brain + "/" + spec.section;
    const std::string format = files.formats[i % files.formats.size()];
    const std::string image = stem + (format == "tiff" ? ".tif" : ".h5");
    const RegionSource source = [&](int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) {
      renderer.Render(y0, x0, h, w, out);
    };
    int last_percent = -1;
    const bool tty = isatty(2);
    const RowProgress progress = [&](int64_t done, int64_t total) {
      const int percent = int(100 * done / total);
      if (files.progress && tty && percent != last_percent) {
        std::fprintf(stderr, "\r[phantom] %s %3d%%", stem.c_str(), percent);
        last_percent = percent;
      }
    };
    const std::string image_path = (fs::path(out_dir) / image).string();
    if (format == "tiff") {
      TiffWriteOptions tiff;
      tiff.tile_size = files.tile_size;
      tiff.compression = files.tiff_compression;
      tiff.pixel_size_um = options.pixel_size_um;
      RETURN_IF_ERROR(WriteTiledTiff(image_path, spec.width, spec.height, source, tiff, progress));
    } else {
      Hdf5WriteOptions hdf5;
      hdf5.chunk_size = files.tile_size;
      hdf5.pixel_size_um = options.pixel_size_um;
      RETURN_IF_ERROR(WriteHdf5Image(image_path, spec.width, spec.height, source, hdf5, progress));
    }
    const std::vector<SamplingPoint> points = renderer.MidlinePoints(options.point_spacing_mm);
    RETURN_IF_ERROR(WritePointsCsv((fs::path(out_dir) / (stem + ".points.csv")).string(), points));
    SectionTransform transform = spec.transform;
    transform.space = "MNI Colin 27 (phantom)";
    transform.provenance = "cytonet phantom, seed " + std::to_string(options.seed);
    RETURN_IF_ERROR(WriteTextFile((fs::path(out_dir) / (stem + ".transform.json")).string(),
                                  TransformToJson(transform).dump(1) + "\n"));
    sections.push_back({{"brain", spec.brain},
                        {"section", spec.section},
                        {"image", image},
                        {"format", format},
                        {"points", stem + ".points.csv"},
                        {"transform", stem + ".transform.json"},
                        {"width", spec.width},
                        {"height", spec.height}});

    // Layer masks around the first points that are not displaced and fit in the image.
    int written = 0;
    const int64_t m = files.mask_size;
    for (const SamplingPoint& p : points) {
      if (written >= files.masks_per_section) break;
      const int64_t y0 = int64_t(p.y_px) - m / 2, x0 = int64_t(p.x_px) - m / 2;
      if (p.displaced || y0 < 0 || x0 < 0 || y0 + m > spec.height || x0 + m > spec.width) continue;
      const fs::path mask_dir = fs::path(out_dir) / "masks" / spec.brain / spec.section;
      fs::create_directories(mask_dir, ec);
      const std::string name = std::to_string(p.id) + ".tif";
      TiffWriteOptions tiff;
      tiff.tile_size = (m + 15) / 16 * 16;
      tiff.pyramid = false;
      tiff.pixel_size_um = options.pixel_size_um;
      RETURN_IF_ERROR(WriteTiledTiff((mask_dir / name).string(), m, m,
                                     [&](int64_t yy, int64_t xx, int64_t h, int64_t w, uint8_t* out) {
                                       renderer.RenderLayerMask(y0 + yy, x0 + xx, h, w, out);
                                     },
                                     tiff));
      masks.push_back({{"brain", spec.brain},
                       {"section", spec.section},
                       {"point_id", p.id},
                       {"path", "masks/" + spec.brain + "/" + spec.section + "/" + name},
                       {"y0", y0},
                       {"x0", x0},
                       {"size", m}});
      ++written;
    }
    if (files.progress) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "%s[phantom] %s %s %lld×%lld, %zu points, %.1f s\n", tty ? "\r" : "", stem.c_str(),
                   format.c_str(), static_cast<long long>(spec.height), static_cast<long long>(spec.width),
                   points.size(), seconds);
    }
  }
  const Json study = {{"cytonet_study", 1},
                      {"name", "phantom-" + std::to_string(options.seed)},
                      {"pixel_size_um", options.pixel_size_um},
                      {"sections", sections},
                      {"areas", "areas.json"},
                      {"masks", {{"labels", "0 background, 1-6 layers I-VI, 7 white matter"}, {"files", masks}}},
                      {"phantom",
                       {{"seed", options.seed},
                        {"brains", options.num_brains},
                        {"sections_per_brain", options.sections_per_brain},
                        {"width", options.width},
                        {"height", options.height},
                        {"areas_per_hemisphere", options.areas_per_hemisphere},
                        {"true_scale", options.true_scale},
                        {"point_spacing_mm", options.point_spacing_mm}}}};
  return WriteTextFile((fs::path(out_dir) / "study.json").string(), study.dump(1) + "\n");
}

}  // namespace cytonet::phantom
