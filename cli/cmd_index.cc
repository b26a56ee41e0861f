// cytonet index: the sampling-point index of a dataset; cytonet query: radius queries on it.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "ingest/jobs.h"
#include "ingest/study.h"

namespace cytonet::cli {

Command AddIndexCommand(CLI::App& app) {
  struct Options {
    IndexOptions index;
    std::string study, dataset;
    bool drop_bad_points = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("index", "Build the sampling-point index (MNI coordinates, tissue filter)");
  cmd->add_option("study", o->study, "Study file (study.json) with points and transforms")->required();
  cmd->add_option("--dataset", o->dataset, "Dataset root (ingested)")->required();
  cmd->add_option("--patch-size", o->index.patch_size_px, "Patch side in level-0 px for the tissue fraction")
      ->capture_default_str();
  cmd->add_option("--min-tissue", o->index.min_tissue_fraction, "Drop points with less tissue under the patch")
      ->capture_default_str();
  cmd->add_option("--background", o->index.background_threshold, "Grey values at or above count as background")
      ->capture_default_str();
  cmd->add_option("--tissue-pixel-um", o->index.tissue_pixel_um,
                  "Measure tissue on the coarsest level with pixels up to this")
      ->capture_default_str();
  cmd->add_flag("--drop-bad-points", o->drop_bad_points,
                "Count and drop points outside the image, NaN points and points of sections not in the dataset "
                "(default: stop with an error)");
  return {cmd, [o] {
            o->index.bad_points = o->drop_bad_points ? BadPointPolicy::kDrop : BadPointPolicy::kError;
            auto study = ReadStudy(o->study);
            if (!study.ok()) return Fail(study.status());
            auto kvstore = OpenFileKvStore(o->dataset, /*create=*/false);
            if (!kvstore.ok()) return Fail(kvstore.status());
            IndexJobResult result;
            const Status ran = RunIndexJob(*kvstore, o->dataset, *study, o->index, &result);
            if (result.rank != 0) return ran.ok() ? 0 : 1;
            if (!ran.ok()) return Fail(ran);
            const IndexStats& stats = result.stats;
            std::printf(
                "index: %lld points read, %lld kept in %zu sections; dropped: %lld low tissue, %lld outside the "
                "image, %lld NaN, %lld of sections not in the dataset\n",
                static_cast<long long>(stats.points_read), static_cast<long long>(stats.kept), result.sections,
                static_cast<long long>(stats.dropped_low_tissue), static_cast<long long>(stats.dropped_outside),
                static_cast<long long>(stats.dropped_nan), static_cast<long long>(stats.dropped_unknown_section));
            if (result.ranks > 1)
              std::printf("index: %d MPI ranks, rows written with collective MPI-IO\n", result.ranks);
            return 0;
          }};
}

Command AddQueryCommand(CLI::App& app) {
  struct Options {
    std::string dataset;
    std::vector<double> mni;
    double radius = 10;
    size_t limit = 20;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("query", "Index rows within a radius of an MNI point");
  cmd->add_option("dataset", o->dataset, "Dataset root with an index")->required();
  cmd->add_option("--mni", o->mni, "x y z in mm")->required()->expected(3)->delimiter(',');
  cmd->add_option("--radius", o->radius, "Radius in mm")->capture_default_str();
  cmd->add_option("--limit", o->limit, "Rows to print (nearest first)")->capture_default_str();
  return {cmd, [o] {
            auto kvstore = OpenFileKvStore(o->dataset, /*create=*/false);
            if (!kvstore.ok()) return Fail(kvstore.status());
            auto table = ReadIndex(*kvstore);
            if (!table.ok()) return Fail(table.status());
            const MniSearch search(*table);
            const auto rows = search.WithinRadius({o->mni[0], o->mni[1], o->mni[2]}, o->radius);
            std::printf("%zu points within %.2f mm of (%.2f, %.2f, %.2f)\n", rows.size(), o->radius, o->mni[0],
                        o->mni[1], o->mni[2]);
            std::printf("%8s %-16s %8s %10s %10s %8s %8s %8s %5s %5s %4s\n", "row", "section", "point", "x_px", "y_px",
                        "mni_x", "mni_y", "mni_z", "area", "layer", "hemi");
            for (size_t i = 0; i < std::min(rows.size(), o->limit); ++i) {
              const size_t r = rows[i];
              const auto& [brain, section] = table->sections[table->section[r]];
              std::printf("%8zu %-16s %8lld %10.1f %10.1f %8.2f %8.2f %8.2f %5d %5d %4d\n", r,
                          (brain + "/" + section).c_str(), static_cast<long long>(table->point_id[r]), table->x_px[r],
                          table->y_px[r], table->mni_x[r], table->mni_y[r], table->mni_z[r], table->area[r],
                          int(table->layer[r]), int(table->hemisphere[r]));
            }
            return 0;
          }};
}

}  // namespace cytonet::cli
