#include "ingest/point_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nanoflann.hpp>
#include <set>
#include <sstream>

#include "dataset/mpi_session.h"
#include "ingest/ingest_job.h"
#include "ingest/points_csv.h"
#include "ingest/section_transform.h"
#include "store/array.h"
#include "store/directory_beneath.h"
#include "store/group.h"
#include "store/ome_zarr.h"

namespace cytonet {
namespace {

// Fraction of tissue (grey < threshold) pixels of a box, from an integral image.
struct TissueMap {
  int64_t height = 0, width = 0;
  std::vector<int64_t> integral;  // (height + 1) × (width + 1)

  TissueMap(const Bytes& level, int64_t h, int64_t w, int threshold) : height(h), width(w) {
    integral.assign(size_t((h + 1) * (w + 1)), 0);
    for (int64_t y = 0; y < h; ++y) {
      int64_t row = 0;
      for (int64_t x = 0; x < w; ++x) {
        row += level[size_t(y * w + x)] < threshold;
        integral[size_t((y + 1) * (w + 1) + x + 1)] = integral[size_t(y * (w + 1) + x + 1)] + row;
      }
    }
  }
  // Tissue pixels over all pixels of the box [y0, y1) × [x0, x1) rounded to whole coarse
  // pixels (at least one); pixels outside the image count as background.
  double Fraction(double y0, double x0, double y1, double x1) const {
    // Halves round up (as CentredBox does), so a box shifted by whole pixels keeps its size.
    const auto round = [](double v) { return int64_t(std::floor(v + 0.5)); };
    const int64_t top = round(y0), left = round(x0);
    const int64_t bottom = std::max(top + 1, round(y1)), right = std::max(left + 1, round(x1));
    const double area = double(bottom - top) * double(right - left);
    const int64_t a = std::clamp<int64_t>(top, 0, height), b = std::clamp<int64_t>(bottom, 0, height);
    const int64_t c = std::clamp<int64_t>(left, 0, width), d = std::clamp<int64_t>(right, 0, width);
    auto at = [&](int64_t y, int64_t x) { return integral[size_t(y * (width + 1) + x)]; };
    return double(at(b, d) - at(a, d) - at(b, c) + at(a, c)) / area;
  }
};

template <typename T>
ByteSpan AsByteSpan(const std::vector<T>& v) {
  return ByteSpan(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T));
}

}  // namespace

Json IndexStats::ToJson() const {
  return {{"points_read", points_read},
          {"kept", kept},
          {"dropped_low_tissue", dropped_low_tissue},
          {"dropped_outside_image", dropped_outside},
          {"dropped_nan", dropped_nan},
          {"dropped_unknown_section", dropped_unknown_section}};
}

Result<IndexTable> BuildIndex(std::shared_ptr<KvStore> dataset, const Study& study, const IndexOptions& options,
                              IndexStats* stats, int rank, int ranks) {
  IndexTable table;
  auto context = std::make_shared<StoreContext>();
  const bool drop = options.bad_points == BadPointPolicy::kDrop;
  // Every rank lists the same sections (and ids); each reads the points of its block.
  std::vector<const StudySection*> with_points;
  std::vector<bool> complete;
  for (const StudySection& s : study.sections) {
    if (s.points.empty()) continue;
    ASSIGN_OR_RETURN(bool done, SectionComplete(*dataset, s.brain, s.section));
    with_points.push_back(&s);
    complete.push_back(done);
    if (done) table.sections.push_back({s.brain, s.section});
  }
  const size_t first = with_points.size() * size_t(rank) / size_t(ranks);
  const size_t end = with_points.size() * size_t(rank + 1) / size_t(ranks);
  uint32_t section_id = 0;
  for (size_t j = 0; j < end; ++j) {
    if (j < first) {
      section_id += complete[j];
      continue;
    }
    const StudySection& s = *with_points[j];
    ASSIGN_OR_RETURN(std::vector<SectionPoint> points, ReadPointsCsv(s.points));
    stats->points_read += int64_t(points.size());
    if (!complete[j]) {
      if (!drop) {
        return NotFoundError("points '" + s.points + "': section " + s.Name() +
                             " is not in the dataset (not ingested, or its ingest failed)");
      }
      stats->dropped_unknown_section += int64_t(points.size());
      continue;
    }
    if (s.transform.empty())
      return InvalidArgumentError("section " + s.Name() + " has points but no transform in the study");
    ASSIGN_OR_RETURN(SectionTransform transform, ReadTransformFile(s.transform));
    ASSIGN_OR_RETURN(MultiscaleImage image,
                     OpenMultiscaleImage(dataset, SectionGroupPath(s.brain, s.section), context));
    const double pixel_um = image.multiscale.levels[0].scale.back();
    size_t level = 0;
    while (level + 1 < image.levels.size() &&
           image.multiscale.levels[level + 1].scale.back() <= options.tissue_pixel_um)
      ++level;
    const ZarrArray& coarse = *image.levels[level];
    ASSIGN_OR_RETURN(Bytes pixels, coarse.Read(coarse.domain()));
    const TissueMap tissue(pixels, coarse.metadata().shape[0], coarse.metadata().shape[1],
                           options.background_threshold);
    const double factor = image.multiscale.levels[level].scale.back() / pixel_um;  // level-0 px per coarse px
    const int64_t height = image.levels[0]->metadata().shape[0], width = image.levels[0]->metadata().shape[1];
    for (const SectionPoint& p : points) {
      const std::string where = "points '" + s.points + "' point " + std::to_string(p.id);
      if (!std::isfinite(p.x_px) || !std::isfinite(p.y_px)) {
        if (!drop) return InvalidArgumentError(where + ": coordinates are not finite numbers");
        ++stats->dropped_nan;
        continue;
      }
      if (p.x_px < 0 || p.y_px < 0 || p.x_px >= double(width) || p.y_px >= double(height)) {
        if (!drop) {
          return OutOfRangeError(where + " at (x " + std::to_string(p.x_px) + ", y " + std::to_string(p.y_px) +
                                 ") lies outside the " + std::to_string(height) + "×" + std::to_string(width) +
                                 " image");
        }
        ++stats->dropped_outside;
        continue;
      }
      const double half = options.patch_size_px / 2;
      const double fraction = tissue.Fraction((p.y_px - half) / factor, (p.x_px - half) / factor,
                                              (p.y_px + half) / factor, (p.x_px + half) / factor);
      if (fraction < options.min_tissue_fraction) {
        ++stats->dropped_low_tissue;
        continue;
      }
      const Vec3 mni = transform.Apply(p.x_px, p.y_px);
      table.section.push_back(section_id);
      table.point_id.push_back(p.id);
      table.x_px.push_back(p.x_px);
      table.y_px.push_back(p.y_px);
      table.mni_x.push_back(mni.x);
      table.mni_y.push_back(mni.y);
      table.mni_z.push_back(mni.z);
      table.area.push_back(p.area);
      table.layer.push_back(p.layer);
      table.hemisphere.push_back(p.hemisphere);
      table.tissue_fraction.push_back(float(fraction));
    }
    ++section_id;
  }
  stats->kept = int64_t(table.size());
  return table;
}

namespace {

// Appends the CRC-32C of the file's `size` bytes, as the crc32c codec stores it, and syncs.
Status AppendCrc32c(const std::string& path, int64_t size) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoError("opening '" + path + "'", errno);
  Bytes data(static_cast<size_t>(size) + 4);
  Status status;
  if (::pread(fd, data.data(), size_t(size), 0) != ssize_t(size))
    status = IOError("'" + path + "' is shorter than its rows");
  if (status.ok()) {
    const uint32_t crc = Crc32c(ByteSpan(data.data(), size_t(size)));
    for (int i = 0; i < 4; ++i) data[size_t(size) + size_t(i)] = uint8_t(crc >> (8 * i));
    if (::pwrite(fd, data.data() + size, 4, size) != 4 || ::fsync(fd) != 0)
      status = ErrnoError("writing '" + path + "'", errno);
  }
  ::close(fd);
  return status;
}

}  // namespace

Status WriteIndex(std::shared_ptr<KvStore> dataset, const IndexTable& table, const IndexOptions& options,
                  IndexStats* total, MpiSession* mpi, const std::string& dataset_root) {
  const bool root = !mpi || mpi->rank() == 0;
  const int64_t local_rows = int64_t(table.size());
  const int64_t offset = mpi ? mpi->ExclusiveSum(local_rows) : 0;
  IndexStats& stats = *total;
  if (mpi) {
    const auto sums = mpi->SumAll({stats.points_read, stats.kept, stats.dropped_low_tissue, stats.dropped_outside,
                                   stats.dropped_nan, stats.dropped_unknown_section});
    stats = {sums[0], sums[1], sums[2], sums[3], sums[4], sums[5]};
  }
  const int64_t n = stats.kept;
  // The group's zarr.json goes first and comes back last: in between the index reads as absent.
  Status cleared = root ? dataset->Erase("index/zarr.json") : Status::Ok();
  if (cleared.ok() && root) cleared = dataset->EraseTree("index");
  RETURN_IF_ERROR(mpi ? mpi->Agree(cleared) : cleared);

  auto context = std::make_shared<StoreContext>();
  auto write_column = [&](const std::string& name, DataType type, ByteSpan data) -> Status {
    ArrayMetadata m;
    m.shape = {n};
    m.chunk_shape = {std::max<int64_t>(1, n)};
    m.data_type = type;
    m.fill_value.assign(DataTypeSize(type), 0);
    m.fill_value_json = 0;
    m.dimension_names = std::vector<std::string>{"point"};
    // One uncompressed chunk (ranks write their rows at fixed offsets) with a CRC-32C.
    m.codecs = Json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}, {{"name", "crc32c"}}});
    const std::string path = "index/" + name;
    const std::string chunk_key = path + "/c/0";
    if (!mpi) {
      if (n > 0) {
        ASSIGN_OR_RETURN(Bytes chunk, MakeCrc32cCodec()->Encode(data));
        RETURN_IF_ERROR(dataset->Put(chunk_key, chunk));
      }
      return ZarrArray::Create(dataset, path, m, context).status();
    }
    // Rows land at their offsets in a temporary file, renamed by rank 0 once all wrote.
    // Each step on rank 0 alone is agreed on, so no rank waits in a collective that a
    // failed rank 0 never reaches.
    const std::string file = dataset_root + "/" + chunk_key;
    Status made = Status::Ok();
    // The same no-follow walk as the file store: a symlinked index/ is refused, not followed.
    if (root) made = OpenDirectoryBeneath(dataset_root, path + "/c", /*create=*/true).status();
    RETURN_IF_ERROR(mpi->Agree(made));
    if (n > 0)
      RETURN_IF_ERROR(
          mpi->WriteAtAll(file + ".mpiio", offset * int64_t(DataTypeSize(type)), data.data(), int64_t(data.size())));
    Status published = Status::Ok();
    if (root && n > 0) published = AppendCrc32c(file + ".mpiio", n * int64_t(DataTypeSize(type)));
    if (root && n > 0 && published.ok() && std::rename((file + ".mpiio").c_str(), file.c_str()) != 0) {
      published = ErrnoError("renaming '" + file + ".mpiio'", errno);
    }
    if (root && published.ok()) published = ZarrArray::Create(dataset, path, m, context).status();
    return mpi->Agree(published);
  };
  Status written;
  ForEachIndexColumn(table, [&](const char* name, DataType type, const auto& column) {
    if (written.ok()) written = write_column(name, type, AsByteSpan(column));
  });
  RETURN_IF_ERROR(written);
  if (!root) return Status::Ok();
  Json sections = Json::array();
  for (const auto& [brain, section] : table.sections) sections.push_back({{"brain", brain}, {"section", section}});
  const Json attributes = {{"cytonet",
                            {{"index",
                              {{"rows", n},
                               {"space", "MNI Colin 27"},
                               {"units", "mm"},
                               {"pixel_coordinates", "level-0 pixels: x_px = column, y_px = row"},
                               {"hemisphere_codes", {{"0", "left"}, {"1", "right"}, {"255", "unknown"}}},
                               {"sections", sections},
                               {"tissue",
                                {{"patch_size_px", options.patch_size_px},
                                 {"min_fraction", options.min_tissue_fraction},
                                 {"background_threshold", options.background_threshold},
                                 {"level_pixel_um_at_most", options.tissue_pixel_um}}},
                               {"stats", stats.ToJson()}}}}}};
  // Written last: the index is complete when its group exists.
  return CreateGroup(*dataset, "index", attributes);
}

Status WriteTransforms(KvStore& dataset, const Study& study, const IndexTable& table) {
  std::map<std::pair<std::string, std::string>, const StudySection*> by_name;
  for (const StudySection& s : study.sections) by_name[{s.brain, s.section}] = &s;
  RETURN_IF_ERROR(CreateGroup(dataset, "transforms", Json::object()));
  std::set<std::string> brains;
  for (const auto& name : table.sections) {
    const StudySection& s = *by_name.at(name);
    ASSIGN_OR_RETURN(SectionTransform transform, ReadTransformFile(s.transform));
    if (brains.insert(s.brain).second) RETURN_IF_ERROR(CreateGroup(dataset, "transforms/" + s.brain, Json::object()));
    RETURN_IF_ERROR(CreateGroup(dataset, "transforms/" + s.brain + "/" + s.section,
                                {{"cytonet", {{"transform", TransformToJson(transform)}}}}));
  }
  return Status::Ok();
}

// nanoflann's dataset adaptor over the MNI columns.
struct MniSearch::Tree {
  struct Points {
    const IndexTable* table;
    size_t kdtree_get_point_count() const { return table->size(); }
    double kdtree_get_pt(size_t i, size_t dim) const {
      return dim == 0 ? table->mni_x[i] : dim == 1 ? table->mni_y[i] : table->mni_z[i];
    }
    template <class Box>
    bool kdtree_get_bbox(Box&) const {
      return false;
    }
  };
  using KdTree = nanoflann::KDTreeSingleIndexAdaptor<nanoflann::L2_Simple_Adaptor<double, Points>, Points, 3, size_t>;
  Points points;
  KdTree tree;
  explicit Tree(const IndexTable& table)
      : points{&table}, tree(3, points, nanoflann::KDTreeSingleIndexAdaptorParams(16)) {
    tree.buildIndex();
  }
};

MniSearch::MniSearch(const IndexTable& table) : tree_(std::make_unique<Tree>(table)) {}
MniSearch::~MniSearch() = default;

std::vector<size_t> MniSearch::WithinRadius(const std::array<double, 3>& mni, double radius_mm) const {
  std::vector<std::pair<size_t, double>> matches;
  tree_->tree.radiusSearch(mni.data(), radius_mm * radius_mm, matches, nanoflann::SearchParams());
  std::vector<size_t> rows;
  rows.reserve(matches.size());
  for (const auto& [row, distance] : matches) rows.push_back(row);
  return rows;
}

}  // namespace cytonet
