#include "loader/patch_reader.h"

#include <array>
#include <chrono>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "loader/host_memory.h"
#include "loader/warp.h"

namespace cytonet {
namespace {

// Gamma, gain and offset on [0, 1] as a table of the 256 grey values; none for the identity.
std::optional<std::array<uint8_t, 256>> IntensityTable(const AugmentationParams& p) {
  if (p.alpha == 1 && p.beta == 0 && p.gamma == 1) return std::nullopt;
  std::array<uint8_t, 256> table;
  for (int v = 0; v < 256; ++v) {
    const double x = p.alpha * std::pow(v / 255.0, p.gamma) + p.beta;
    table[size_t(v)] = uint8_t(std::lround(std::clamp(x, 0.0, 1.0) * 255));
  }
  return table;
}

// Whether the pixels of `part` ([y, y + h) × [x, x + w), array coordinates), grown by
// `margin` pixels, meet the parallelogram with `corners` (in order around it): the
// separating-axis test on the two axes and the parallelogram's two edge normals.
bool RectangleMeetsParallelogram(const Box& part, const std::array<std::array<double, 2>, 4>& corners, double margin) {
  const double x0 = double(part.origin[1]) - margin, x1 = double(part.origin[1] + part.shape[1]) + margin;
  const double y0 = double(part.origin[0]) - margin, y1 = double(part.origin[0] + part.shape[0]) + margin;
  const std::array<std::array<double, 2>, 4> rectangle = {{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}}};
  const std::array<std::array<double, 2>, 4> axes = {{{1, 0},
                                                      {0, 1},
                                                      {corners[0][1] - corners[1][1], corners[1][0] - corners[0][0]},
                                                      {corners[1][1] - corners[2][1], corners[2][0] - corners[1][0]}}};
  for (const auto& axis : axes) {
    double a_min = 1e300, a_max = -1e300, b_min = 1e300, b_max = -1e300;
    for (const auto& p : rectangle) {
      const double d = p[0] * axis[0] + p[1] * axis[1];
      a_min = std::min(a_min, d), a_max = std::max(a_max, d);
    }
    for (const auto& p : corners) {
      const double d = p[0] * axis[0] + p[1] * axis[1];
      b_min = std::min(b_min, d), b_max = std::max(b_max, d);
    }
    if (a_max < b_min || b_max < a_min) return false;
  }
  return true;
}

// "patch of B/S at (x, y)", for errors.
std::string Where(const PatchRequest& r, const char* what) {
  return std::string(what) + " of " + r.brain + "/" + r.section + " at (" + std::to_string(r.centre_x) + ", " +
         std::to_string(r.centre_y) + ")";
}

// Where a patch lies in its level: the centre c (level pixels, shift included), the
// half-side h, the map A = R(θ)·diag(1, ±1) taking (u − h, v − h) to c-relative source
// coordinates, and the rotated square's corners.
struct PatchFrame {
  double cx = 0, cy = 0, h = 0;
  std::array<double, 4> A = {1, 0, 0, 1};
  std::array<std::array<double, 2>, 4> corners = {};
};

PatchFrame Frame(const PatchRequest& r, double pixel_um) {
  const AugmentationParams& a = r.augmentation;
  const double scale = double(int64_t(1) << r.level);
  const double shift_px = a.shift_mm * 1000 / pixel_um;
  PatchFrame f;
  f.cx = (r.centre_x + 0.5) / scale - 0.5 + shift_px * std::cos(a.shift_direction);
  f.cy = (r.centre_y + 0.5) / scale - 0.5 + shift_px * std::sin(a.shift_direction);
  f.h = double(r.size - 1) / 2;
  const double cos_t = std::cos(a.theta), sin_t = std::sin(a.theta), m = a.mirror ? -1.0 : 1.0;
  f.A = {cos_t, -sin_t * m, sin_t, cos_t * m};
  const auto& A = f.A;
  const double h = f.h;
  f.corners = {{{f.cx - A[0] * h - A[1] * h, f.cy - A[2] * h - A[3] * h},
                {f.cx + A[0] * h - A[1] * h, f.cy + A[2] * h - A[3] * h},
                {f.cx + A[0] * h + A[1] * h, f.cy + A[2] * h + A[3] * h},
                {f.cx - A[0] * h + A[1] * h, f.cy - A[2] * h + A[3] * h}}};
  return f;
}

void ApplyFilter(const AugmentationParams& p, cv::Mat& patch) {
  if (p.filter == PatchFilter::kNone) return;
  // One blurred copy per thread, kept: the loader's memory bound counts it, and 4 MB
  // allocations per patch would keep glibc's arenas growing.
  thread_local HostBuffer blurred_pixels;
  const size_t bytes = size_t(patch.rows) * size_t(patch.cols);
  if (blurred_pixels.size() < bytes) blurred_pixels = HostBuffer(bytes, false);
  cv::Mat blurred(patch.rows, patch.cols, CV_8U, blurred_pixels.data());
  cv::GaussianBlur(patch, blurred, cv::Size(0, 0), p.sigma, p.sigma, cv::BORDER_REFLECT_101);
  if (p.filter == PatchFilter::kBlur) {
    blurred.copyTo(patch);
  } else {  // unsharp masking: x + δ(x − G(x)) = (1 + δ)·x − δ·G(x), saturated to [0, 255]
    cv::addWeighted(patch, 1 + p.delta, blurred, -p.delta, 0, patch);
  }
}

}  // namespace

Result<std::unique_ptr<PatchReader>> PatchReader::Open(std::shared_ptr<KvStore> dataset,
                                                       std::shared_ptr<StoreContext> context) {
  std::unique_ptr<PatchReader> reader(new PatchReader());
  reader->dataset_ = std::move(dataset);
  reader->context_ = std::move(context);
  RETURN_IF_ERROR(ReadDatasetRoot(*reader->dataset_).status());
  ASSIGN_OR_RETURN(auto index_group, reader->dataset_->Get("index/zarr.json"));
  if (index_group) {
    ASSIGN_OR_RETURN(IndexTable table, ReadIndex(reader->dataset_));
    reader->index_ = std::move(table);
  }
  return reader;
}

Result<const MultiscaleImage*> PatchReader::Image(const std::string& brain, const std::string& section) const {
  std::lock_guard lock(images_mutex_);
  auto& slot = images_[{brain, section}];
  if (!slot) {
    auto image = OpenSection(dataset_, brain, section, context_);
    if (!image.ok()) {
      images_.erase({brain, section});
      return image.status().WithContext("section " + brain + "/" + section);
    }
    slot = std::make_unique<MultiscaleImage>(std::move(*image));
  }
  return slot.get();
}

Result<double> PatchReader::PixelSize(const std::string& brain, const std::string& section, int level) const {
  ASSIGN_OR_RETURN(const MultiscaleImage* image, Image(brain, section));
  if (level < 0 || size_t(level) >= image->levels.size()) {
    return OutOfRangeError("section " + brain + "/" + section + " has no level " + std::to_string(level));
  }
  return image->multiscale.levels[size_t(level)].scale.back();
}

Result<const MultiscaleImage*> PatchReader::CheckedImage(const PatchRequest& r, const char* what) const {
  ASSIGN_OR_RETURN(const MultiscaleImage* image, Image(r.brain, r.section));
  auto where = [&] { return Where(r, what); };
  if (r.level < 0 || size_t(r.level) >= image->levels.size()) {
    return OutOfRangeError(where() + ": no level " + std::to_string(r.level));
  }
  if (r.size <= 0 || r.size > 65536) return InvalidArgumentError(where() + ": bad size " + std::to_string(r.size));
  if (!std::isfinite(r.centre_x) || !std::isfinite(r.centre_y))
    return InvalidArgumentError(where() + ": centre is not finite");
  if (const DataType type = image->levels[size_t(r.level)]->metadata().data_type; type != DataType::kUint8) {
    return InvalidArgumentError(where() + ": level " + std::to_string(r.level) + " is " +
                                std::string(DataTypeName(type)) + "; patches are uint8");
  }
  return image;
}

Status PatchReader::Read(const PatchRequest& r, uint8_t* out) const {
  ASSIGN_OR_RETURN(const MultiscaleImage* image, CheckedImage(r, "patch"));
  // Built only for an error: reads that succeed skip the string work.
  auto where = [&] { return Where(r, "patch"); };
  const ZarrArray& level = *image->levels[size_t(r.level)];
  const AugmentationParams& a = r.augmentation;
  const PatchFrame frame = Frame(r, image->multiscale.levels[size_t(r.level)].scale.back());
  const double cx = frame.cx, cy = frame.cy, h = frame.h;
  cv::Mat patch(int(r.size), int(r.size), CV_8U, out);
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
  };
  auto t = Clock::now();

  const bool geometry = a.theta != 0 || a.mirror || a.shift_mm != 0;
  std::optional<std::array<uint8_t, 256>> table = IntensityTable(a);
  if (!geometry) {
    const Box box = CentredBox(cx, cy, r.size);
    if (Status st = level.Read(box, MutableByteSpan(out, size_t(r.size * r.size))); !st.ok())
      return st.WithContext(where());
    read_ns_ += since(t);
  } else {
    // Output (u, v) → source c + A·(u − h, v − h), A = R(θ)·diag(1, ±1). Read the source
    // box that holds all four rotated corners, plus one pixel for the bilinear taps.
    const std::array<double, 4>& A = frame.A;
    const double reach_x = h * (std::abs(A[0]) + std::abs(A[1])), reach_y = h * (std::abs(A[2]) + std::abs(A[3]));
    const int64_t x0 = int64_t(std::floor(cx - reach_x)) - 1, y0 = int64_t(std::floor(cy - reach_y)) - 1;
    const int64_t x1 = int64_t(std::ceil(cx + reach_x)) + 2, y1 = int64_t(std::ceil(cy + reach_y)) + 2;
    const Box box{{y0, x0}, {y1 - y0, x1 - x0}};
    // Reused across patches (no page faults per read); grows to the largest box a thread saw.
    thread_local HostBuffer source;
    const size_t source_bytes = size_t(box.num_elements());
    if (source.size() < source_bytes + kWarpSourcePadding)
      source = HostBuffer(source_bytes + kWarpSourcePadding, false);
    // Only the chunks under the rotated square (plus the bilinear taps' reach) are read:
    // the corners of its bounding box are up to half of it and the warp never samples them.
    const auto under_square = [&](const Box& part) { return RectangleMeetsParallelogram(part, frame.corners, 2.0); };
    if (Status st = level.Read(box, MutableByteSpan(source.data(), source_bytes), under_square); !st.ok())
      return st.WithContext(where());
    read_ns_ += since(t);
    t = Clock::now();
    // Inverse map: source (in box coordinates) = A·(u, v) + t. Gamma is applied in the same pass.
    const std::array<double, 6> map = {A[0], A[1], cx - double(x0) - A[0] * h - A[1] * h,
                                       A[2], A[3], cy - double(y0) - A[2] * h - A[3] * h};
    WarpAffineBilinear({source.data(), int(box.shape[1]), int(box.shape[0]), ptrdiff_t(box.shape[1])}, map,
                       level.metadata().fill_value[0], table ? &*table : nullptr, int(r.size), out);
    warp_ns_ += since(t);
  }
  if (!geometry && table) {
    t = Clock::now();
    cv::LUT(patch, cv::Mat(1, 256, CV_8U, table->data()), patch);
    intensity_ns_ += since(t);
  }
  t = Clock::now();
  ApplyFilter(a, patch);
  filter_ns_ += since(t);
  ++patches_;
  return Status::Ok();
}

int64_t PatchReader::SourceBoxSize(int64_t size) {
  return 2 * int64_t(std::ceil(std::sqrt(2.0) * double(size - 1) / 2)) + 4;
}

Status PatchReader::ReadSource(const PatchRequest& r, uint8_t* out, SourceMap* map) const {
  ASSIGN_OR_RETURN(const MultiscaleImage* image, CheckedImage(r, "source of the patch"));
  auto where = [&] { return Where(r, "source of the patch"); };
  const ZarrArray& level = *image->levels[size_t(r.level)];
  const auto t = std::chrono::steady_clock::now();
  const PatchFrame f = Frame(r, image->multiscale.levels[size_t(r.level)].scale.back());
  // The box [x0, x0 + side) × [y0, y0 + side) holds every tap within √2·h of the centre.
  const int64_t side = SourceBoxSize(r.size), reach = (side - 4) / 2 + 1;
  const int64_t x0 = int64_t(std::floor(f.cx)) - reach, y0 = int64_t(std::floor(f.cy)) - reach;
  const Box box{{y0, x0}, {side, side}};
  const auto under_square = [&](const Box& part) { return RectangleMeetsParallelogram(part, f.corners, 2.0); };
  if (Status st = level.Read(box, MutableByteSpan(out, size_t(side * side)), under_square); !st.ok())
    return st.WithContext(where());
  const auto& A = f.A;
  const AugmentationParams& a = r.augmentation;
  if (a.theta == 0 && !a.mirror && a.shift_mm == 0) {
    // Read's plain crop: CentredBox's whole-pixel origin, so the device samples no between-pixel values.
    const Box crop = CentredBox(f.cx, f.cy, r.size);
    map->affine = {1, 0, double(crop.origin[1] - x0), 0, 1, double(crop.origin[0] - y0)};
  } else {
    map->affine = {A[0], A[1], f.cx - double(x0) - A[0] * f.h - A[1] * f.h,
                   A[2], A[3], f.cy - double(y0) - A[2] * f.h - A[3] * f.h};
  }
  map->fill = level.metadata().fill_value[0];
  read_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t).count();
  ++patches_;
  return Status::Ok();
}

Status PatchReader::ReadRowSource(int64_t row, int level, int64_t size, const AugmentationParams& augmentation,
                                  uint8_t* out, SourceMap* map) const {
  if (!index_) return FailedPreconditionError("the dataset has no index/ (run cytonet index)");
  if (row < 0 || size_t(row) >= index_->size()) {
    return OutOfRangeError("index row " + std::to_string(row) + " of " + std::to_string(index_->size()));
  }
  PatchRequest request = RowRequest(row, level, size);
  request.augmentation = augmentation;
  return ReadSource(request, out, map).WithContext("index row " + std::to_string(row));
}

PatchStageTimes PatchReader::stage_times() const {
  return {patches_.load(), read_ns_.load(), warp_ns_.load(), intensity_ns_.load(), filter_ns_.load()};
}

Result<Bytes> PatchReader::Read(const PatchRequest& request) const {
  Bytes out(size_t(std::max<int64_t>(request.size, 0) * std::max<int64_t>(request.size, 0)));
  RETURN_IF_ERROR(Read(request, out.data()));
  return out;
}

Status PatchReader::ReadBox(const std::string& brain, const std::string& section, int level, const Box& box,
                            uint8_t* out) const {
  ASSIGN_OR_RETURN(const MultiscaleImage* image, Image(brain, section));
  if (level < 0 || size_t(level) >= image->levels.size()) {
    return OutOfRangeError("section " + brain + "/" + section + " has no level " + std::to_string(level));
  }
  if (box.rank() != 2 || box.shape[0] < 0 || box.shape[1] < 0)
    return InvalidArgumentError("box " + box.ToString() + " is not 2-D");
  if (const DataType type = image->levels[size_t(level)]->metadata().data_type; type != DataType::kUint8) {
    return InvalidArgumentError("section " + brain + "/" + section + " level " + std::to_string(level) + " is " +
                                std::string(DataTypeName(type)) + "; read_box reads uint8");
  }
  return image->levels[size_t(level)]
      ->Read(box, MutableByteSpan(out, size_t(box.num_elements())))
      .WithContext("section " + brain + "/" + section + " level " + std::to_string(level));
}

PatchRequest PatchReader::RowRequest(int64_t row, int level, int64_t size) const {
  PatchRequest r;
  const auto& [brain, section] = index_->sections[index_->section[size_t(row)]];
  r.brain = brain;
  r.section = section;
  r.level = level;
  r.size = size;
  r.centre_x = index_->x_px[size_t(row)];
  r.centre_y = index_->y_px[size_t(row)];
  return r;
}

Status PatchReader::ReadRow(int64_t row, int level, int64_t size, const AugmentationParams& augmentation,
                            uint8_t* out) const {
  if (!index_) return FailedPreconditionError("the dataset has no index/ (run cytonet index)");
  if (row < 0 || size_t(row) >= index_->size()) {
    return OutOfRangeError("index row " + std::to_string(row) + " of " + std::to_string(index_->size()));
  }
  PatchRequest request = RowRequest(row, level, size);
  request.augmentation = augmentation;
  return Read(request, out).WithContext("index row " + std::to_string(row));
}

}  // namespace cytonet
