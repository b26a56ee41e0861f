// cytonet phantom: writes a synthetic study (slides, points, transforms, masks).
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "ingest/phantom_files.h"

namespace cytonet::cli {

Command AddPhantomCommand(CLI::App& app) {
  struct Options {
    phantom::PhantomOptions phantom;
    phantom::PhantomFileOptions files;
    std::string out, formats = "tiff";
    int threads = 0;
    bool quiet = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("phantom", "Write a synthetic study of silver-stained brain sections");
  cmd->add_option("--out", o->out, "Output folder (study.json and the files it lists)")->required();
  cmd->add_option("--seed", o->phantom.seed, "Seed: everything is a function of it")->capture_default_str();
  cmd->add_option("--brains", o->phantom.num_brains, "Number of brains")
      ->capture_default_str()
      ->check(CLI::Range(1, 99));
  cmd->add_option("--sections", o->phantom.sections_per_brain, "Sections per brain")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--width", o->phantom.width, "Section width in level-0 pixels")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(64), int64_t(1) << 31));
  cmd->add_option("--height", o->phantom.height, "Section height in level-0 pixels")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(64), int64_t(1) << 31));
  cmd->add_option("--areas", o->phantom.areas_per_hemisphere, "Areas per hemisphere")
      ->capture_default_str()
      ->check(CLI::Range(1, 500));
  cmd->add_option_function<double>(
         "--pixel-size-um",
         [o](double um) {
           o->phantom.true_scale = true;
           o->phantom.pixel_size_um = um;
         },
         "Draw the brain at its true size with this pixel size (µm); without it the whole "
         "brain is shrunk to fit the image (a nominal 1 µm/px, for I/O benchmarks)")
      // Outside this range a true-scale render gets very slow: margins of thousands of pixels
      // below it, many cell sites per pixel above it.
      ->check(CLI::Range(0.25, 50.0));
  cmd->add_option("--point-spacing-mm", o->phantom.point_spacing_mm, "Spacing of midline points")
      ->capture_default_str();
  cmd->add_option("--formats", o->formats, "Slide formats, round-robin over sections: tiff,hdf5")
      ->capture_default_str();
  cmd->add_option("--tile", o->files.tile_size, "TIFF tile / HDF5 chunk size")->capture_default_str();
  cmd->add_option("--compression", o->files.tiff_compression, "TIFF compression: none, lzw, deflate")
      ->capture_default_str();
  cmd->add_option("--masks", o->files.masks_per_section, "Layer masks per section")->capture_default_str();
  cmd->add_option("--mask-size", o->files.mask_size, "Layer mask size (level-0 pixels)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Worker threads (0 = all cores)");
  cmd->add_flag("--quiet", o->quiet, "No progress on stderr");
  return {cmd, [o] {
            LimitThreads(o->threads);
            o->files.formats.clear();
            std::stringstream list(o->formats);
            for (std::string f; std::getline(list, f, ',');) o->files.formats.push_back(f);
            o->files.progress = !o->quiet;
            const Status status = phantom::WritePhantomStudy(o->phantom, o->files, o->out);
            if (!status.ok()) return Fail(status);
            std::printf("phantom: %d brains × %d sections of %lld×%lld px in %s (study.json)\n", o->phantom.num_brains,
                        o->phantom.sections_per_brain, static_cast<long long>(o->phantom.height),
                        static_cast<long long>(o->phantom.width), o->out.c_str());
            return 0;
          }};
}

}  // namespace cytonet::cli
