// HDF5 2-D uint8 datasets; every HDF5 call holds Hdf5Lock() (ingest/hdf5_lock.h).
#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <vector>

#include "ingest/hdf5_lock.h"
#include "ingest/slide_reader.h"

namespace cytonet {

std::recursive_mutex& Hdf5Lock() {
  static std::recursive_mutex lock;
  return lock;
}

namespace {

class Hdf5Slide final : public SlideReader {
 public:
  static Result<std::unique_ptr<SlideReader>> Open(const std::string& path, const std::string& dataset_name) {
    std::lock_guard lock(Hdf5Lock());
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return NotFoundError("HDF5 '" + path + "' does not exist");
    std::unique_ptr<Hdf5Slide> slide(new Hdf5Slide(path));
    const std::string where = "HDF5 '" + path + "'";
    slide->file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (slide->file_ < 0) return CorruptionError(where + ": not a readable HDF5 file");
    if (H5Lexists(slide->file_, dataset_name.c_str(), H5P_DEFAULT) <= 0) {
      return NotFoundError(where + ": no dataset '" + dataset_name + "'");
    }
    slide->dataset_ = H5Dopen2(slide->file_, dataset_name.c_str(), H5P_DEFAULT);
    if (slide->dataset_ < 0) return CorruptionError(where + ": dataset '" + dataset_name + "' cannot be opened");
    const hid_t type = H5Dget_type(slide->dataset_);
    const bool uint8 = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    H5Tclose(type);
    if (!uint8) return UnimplementedError(where + ": dataset '" + dataset_name + "' is not uint8");
    const hid_t space = H5Dget_space(slide->dataset_);
    hsize_t dims[2] = {0, 0};
    const int rank = H5Sget_simple_extent_ndims(space);
    if (rank == 2) H5Sget_simple_extent_dims(space, dims, nullptr);
    H5Sclose(space);
    if (rank != 2)
      return UnimplementedError(where + ": dataset '" + dataset_name + "' has rank " + std::to_string(rank) +
                                ", not 2");
    slide->height_ = int64_t(dims[0]);
    slide->width_ = int64_t(dims[1]);
    slide->pixel_size_um_ = slide->ReadPixelSize();
    slide->description_ = "HDF5 dataset '" + dataset_name + "'";
    return std::unique_ptr<SlideReader>(std::move(slide));
  }

  ~Hdf5Slide() override {
    std::lock_guard lock(Hdf5Lock());
    if (dataset_ >= 0) H5Dclose(dataset_);
    if (file_ >= 0) H5Fclose(file_);
  }

  Status ReadRegion(int64_t y0, int64_t x0, int64_t h, int64_t w, uint8_t* out) const override {
    RETURN_IF_ERROR(CheckBox(y0, x0, h, w));
    if (h == 0 || w == 0) return Status::Ok();
    std::lock_guard lock(Hdf5Lock());
    const hid_t space = H5Dget_space(dataset_);
    const hsize_t start[2] = {hsize_t(y0), hsize_t(x0)}, count[2] = {hsize_t(h), hsize_t(w)};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t memory = H5Screate_simple(2, count, nullptr);
    const herr_t status = H5Dread(dataset_, H5T_NATIVE_UINT8, memory, space, H5P_DEFAULT, out);
    H5Sclose(memory);
    H5Sclose(space);
    if (status < 0) {
      return CorruptionError("HDF5 '" + path() + "': rows " + std::to_string(y0) + "…" + std::to_string(y0 + h) +
                             " cannot be read (damaged chunk or filter unavailable)");
    }
    return Status::Ok();
  }

 private:
  explicit Hdf5Slide(std::string path) : SlideReader(std::move(path)) {}

  // "pixel_size_um" (ours) or "element_size_um" (Fiji/ilastik: one value per axis).
  std::optional<double> ReadPixelSize() const {
    for (const char* name : {"pixel_size_um", "element_size_um"}) {
      if (H5Aexists(dataset_, name) <= 0) continue;
      const hid_t attribute = H5Aopen(dataset_, name, H5P_DEFAULT);
      const hid_t space = H5Aget_space(attribute);
      const hssize_t n = H5Sget_simple_extent_npoints(space);
      std::vector<double> values(size_t(std::max<hssize_t>(n, 1)));
      const herr_t status = H5Aread(attribute, H5T_NATIVE_DOUBLE, values.data());
      H5Sclose(space);
      H5Aclose(attribute);
      if (status >= 0 && n >= 1 && PlausiblePixelSize(values.back())) return values.back();
    }
    return std::nullopt;
  }

  hid_t file_ = -1, dataset_ = -1;
};

}  // namespace

Result<std::unique_ptr<SlideReader>> OpenHdf5Slide(const std::string& path, const std::string& dataset) {
  return Hdf5Slide::Open(path, dataset);
}

}  // namespace cytonet
