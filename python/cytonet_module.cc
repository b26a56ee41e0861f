// The `cytonet` Python module: a thin layer over loader/ (no logic of its own).
//
//   ds = cytonet.open("/data/dataset")   # cache_mb=, map_files=: see help(cytonet.open)
//   ds.brains()                  -> {"B01": ["0001", ...], ...}
//   ds.index                     -> {"mni_x": ndarray, ...} (read once; arrays share the memory)
//   ds.read("B01", "0001", level=1, centre=(x, y), size=2048) -> uint8 ndarray (size, size)
//   ds.read_box("B01", "0001", level=1, box=(y0, x0, h, w))    -> uint8 ndarray (h, w)
//   ds.features("small-pretrained") -> float32 ndarray (index rows, dims); ds.feature_sets()
//   for batch in ds.loader(batch_size=32, patch_size=2048, seed=1, threads=4): batch["images"]
//   a = cytonet.open_array("/data/x.zarr", "path/in/it", cache_mb=64); a.read((y0, x0), (h, w))
//
// Reads write straight into the numpy array they return and release the GIL while they
// work. Batch images are views of the loader's ring slot: the slot is held while any
// array of the batch is alive (hold fewer batches than ring_depth). Fork: a child must
// open its own dataset (cytonet.open) — objects made before fork() hold threads and file
// handles that do not survive it; see docs/loader.md.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <tbb/global_control.h>
#include <unistd.h>

#include <map>

#include "dataset/dataset.h"
#include "dataset/features.h"
#include "dataset/layout.h"
#include "loader/loader.h"
#include "store/buffer_pool.h"
#include "store/kvstore.h"

namespace py = pybind11;

namespace cytonet {
namespace {

[[noreturn]] void Raise(const Status& status) {
  PyObject* type = PyExc_RuntimeError;
  switch (status.code()) {
    case StatusCode::kNotFound:
      type = PyExc_KeyError;
      break;
    case StatusCode::kInvalidArgument:
      type = PyExc_ValueError;
      break;
    case StatusCode::kOutOfRange:
      type = PyExc_IndexError;
      break;
    default:
      break;
  }
  // Messages name files, and file names are bytes: decoding strictly (what pybind11 does
  // with an exception's what()) turns a message with one non-UTF-8 byte into ''. Keep the
  // byte visible as \xNN instead.
  const std::string text = status.ToString();
  py::object message = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(text.data(), static_cast<py::ssize_t>(text.size()), "backslashreplace"));
  if (!message) throw py::error_already_set();
  PyErr_SetObject(type, message.ptr());
  throw py::error_already_set();
}

// Bounds that keep sizes derived from the arguments far from overflow and from asking the
// system for more threads than it can start (an errno message names no argument).
constexpr int64_t kMaxCacheMb = (int64_t{1} << 40) >> 20;  // 1 TiB

void CheckRange(const char* name, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    throw py::value_error(std::string(name) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                          "], got " + std::to_string(value));
  }
}

// A process-owned handle: refuses use in a forked child, where its threads are gone.
struct Dataset {
  std::shared_ptr<KvStore> kvstore;
  std::shared_ptr<const PatchReader> reader;
  pid_t owner = getpid();
  void CheckProcess() const {
    if (getpid() != owner) {
      throw std::runtime_error("cytonet dataset used in a forked child: call cytonet.open() again in the child");
    }
  }
  // features/<name>, opened against this dataset's index.
  FeatureSet Features(const std::string& name) const;
};

template <typename T>
py::array_t<T> ColumnView(const std::vector<T>& column, py::handle owner) {
  return py::array_t<T>({py::ssize_t(column.size())}, {py::ssize_t(sizeof(T))}, column.data(), owner);
}

// A 1-D numpy copy of a small vector (batch metadata).
template <typename T>
py::array_t<T> Copy1D(const std::vector<T>& values) {
  py::array_t<T> out(std::vector<py::ssize_t>{py::ssize_t(values.size())});
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

// Any Zarr v3/v2 array (not only a dataset's), for tools and benchmarks.
struct ArrayHandle {
  std::shared_ptr<ZarrArray> array;
  pid_t owner = getpid();
  void CheckProcess() const {
    if (getpid() != owner) throw std::runtime_error("cytonet array used in a forked child: open it again in the child");
  }
};

// The store and context every open shares: a file store with the decoded-chunk cache.
std::pair<std::shared_ptr<KvStore>, std::shared_ptr<StoreContext>> OpenStore(const std::string& path, int64_t cache_mb,
                                                                             bool map_files) {
  CheckRange("cache_mb", cache_mb, 0, kMaxCacheMb);
  FileKvStoreOptions file_options;
  file_options.map_files = map_files;
  auto kvstore = OpenFileKvStore(path, /*create=*/false, file_options);
  if (!kvstore.ok()) Raise(kvstore.status());
  StoreContextOptions options;
  options.chunk_cache_bytes = size_t(cache_mb) << 20;
  return {*kvstore, std::make_shared<StoreContext>(options)};
}

// The memory of the arrays reads return. A fresh 4 MB numpy array costs 1024 page faults
// and the kernel zeroing every page on first touch, about as much as decoding a tenth of a
// 2048² patch; buffers from this pool come back when their array is freed and are reused.
// Up to 256 MiB of them wait idle.
BufferPool& ReadBuffers() {
  static const std::shared_ptr<BufferPool> pool = BufferPool::Make(size_t{256} << 20);
  return *pool;
}

// A C-order numpy array of `dtype` and `extents` whose memory comes from ReadBuffers().
py::array PooledArray(const py::dtype& dtype, size_t item_size, const std::vector<py::ssize_t>& extents) {
  auto shape_text = [&] {
    std::string text;
    for (py::ssize_t extent : extents) text += (text.empty() ? "" : ", ") + std::to_string(extent);
    return "(" + text + ")";
  };
  size_t bytes = item_size;
  for (py::ssize_t extent : extents) {
    if (extent < 0) throw py::value_error("read shape " + shape_text() + " has a negative extent");
    if (__builtin_mul_overflow(bytes, size_t(extent), &bytes) || bytes > (size_t{1} << 46)) {
      throw py::value_error("read shape " + shape_text() + " is too large for memory");
    }
  }
  auto* buffer = new std::shared_ptr<Bytes>(ReadBuffers().Take(std::max<size_t>(bytes, 1)));
  py::capsule owner(buffer, [](void* p) { delete static_cast<std::shared_ptr<Bytes>*>(p); });
  // Strides from our own item size: this pybind11 reads NumPy 2's dtype item size as 0.
  std::vector<py::ssize_t> strides(extents.size(), py::ssize_t(item_size));
  for (size_t d = extents.size(); d-- > 1;) strides[d - 1] = strides[d] * extents[d];
  return py::array(dtype, extents, strides, (*buffer)->data(), owner);
}

py::array_t<uint8_t> PooledBytes(py::ssize_t height, py::ssize_t width) {
  return py::array_t<uint8_t>(PooledArray(py::dtype::of<uint8_t>(), 1, {height, width}));
}

FeatureSet Dataset::Features(const std::string& name) const {
  CheckProcess();
  if (!reader->index()) throw std::runtime_error("the dataset has no index/ (run cytonet index)");
  auto set = OpenFeatureSet(kvstore, name, *reader->index(), std::make_shared<StoreContext>());
  if (!set.ok()) Raise(set.status());
  return *std::move(set);
}

struct BatchIterator {
  std::shared_ptr<Dataset> dataset;
  std::unique_ptr<Loader> loader;
};

}  // namespace
}  // namespace cytonet

PYBIND11_MODULE(cytonet, m) {
  using namespace cytonet;
  m.doc() = "cytonet: chunked microscopy datasets, random-access patches and the training loader";
  m.attr("__version__") = CYTONET_VERSION;

  py::class_<Dataset, std::shared_ptr<Dataset>>(m, "Dataset")
      .def("brains",
           [](const Dataset& d) {
             d.CheckProcess();
             auto root = ReadDatasetRoot(*d.kvstore);
             if (!root.ok()) Raise(root.status());
             return root->brains;
           })
      .def_property_readonly("index",
                             [](py::object self) {
                               const Dataset& d = self.cast<const Dataset&>();
                               d.CheckProcess();
                               const IndexTable* t = d.reader->index();
                               if (!t) throw std::runtime_error("the dataset has no index/ (run cytonet index)");
                               py::dict columns;
                               ForEachIndexColumn(*t, [&](const char* name, DataType, const auto& column) {
                                 columns[name] = ColumnView(column, self);
                               });
                               return columns;
                             })
      .def_property_readonly("index_sections",
                             [](const Dataset& d) {
                               d.CheckProcess();
                               if (!d.reader->index()) throw std::runtime_error("the dataset has no index/");
                               return d.reader->index()->sections;
                             })
      .def(
          "read",
          [](const Dataset& d, const std::string& brain, const std::string& section, int level,
             std::pair<double, double> centre, int64_t size) {
            d.CheckProcess();
            py::array_t<uint8_t> out = PooledBytes(size, size);
            PatchRequest request{brain, section, level, centre.first, centre.second, size, {}};
            Status status;
            {
              py::gil_scoped_release release;
              status = d.reader->Read(request, out.mutable_data());
            }
            if (!status.ok()) Raise(status);
            return out;
          },
          py::arg("brain"), py::arg("section"), py::arg("level") = 1, py::arg("centre"), py::arg("size") = 2048,
          "A size × size patch of `level` centred on `centre` = (x, y) in level-0 pixels.")
      .def(
          "features",
          [](const Dataset& d, const std::string& name) {
            const FeatureSet set = d.Features(name);
            py::array_t<float> out({py::ssize_t(set.rows), py::ssize_t(set.dims)});
            Status status;
            {
              py::gil_scoped_release release;
              status = ReadFeatureRows(set, 0, set.rows, out.mutable_data());
            }
            if (!status.ok()) Raise(status);
            return out;
          },
          py::arg("name"), "features/<name> (cytonet extract) as float32 (index rows, dims); NaN for rows it left out.")
      .def(
          "feature_provenance",
          [](const Dataset& d, const std::string& name) {
            return py::module_::import("json").attr("loads")(d.Features(name).provenance.dump());
          },
          py::arg("name"), "What features/<name> were extracted with (model, level, checkpoint step, ...).")
      .def("feature_sets",
           [](const Dataset& d) {
             d.CheckProcess();
             auto names = ListFeatureSets(*d.kvstore);
             if (!names.ok()) Raise(names.status());
             return *names;
           })
      .def(
          "read_box",
          [](const Dataset& d, const std::string& brain, const std::string& section, int level,
             std::tuple<int64_t, int64_t, int64_t, int64_t> box) {
            d.CheckProcess();
            const auto [y0, x0, h, w] = box;
            if (h < 0 || w < 0) throw py::value_error("box height and width must be >= 0");
            py::array_t<uint8_t> out = PooledBytes(h, w);
            Status status;
            {
              py::gil_scoped_release release;
              status = d.reader->ReadBox(brain, section, level, Box{{y0, x0}, {h, w}}, out.mutable_data());
            }
            if (!status.ok()) Raise(status);
            return out;
          },
          py::arg("brain"), py::arg("section"), py::arg("level") = 1, py::arg("box"),
          "Pixels [y0, y0 + h) × [x0, x0 + w) of `level`, box = (y0, x0, h, w).")
      .def(
          "read_row",
          [](const Dataset& d, int64_t row, int level, int64_t size) {
            d.CheckProcess();
            py::array_t<uint8_t> out = PooledBytes(size, size);
            Status status;
            {
              py::gil_scoped_release release;
              status = d.reader->ReadRow(row, level, size, {}, out.mutable_data());
            }
            if (!status.ok()) Raise(status);
            return out;
          },
          py::arg("row"), py::arg("level") = 1, py::arg("size") = 2048)
      .def(
          "loader",
          [](std::shared_ptr<Dataset> d, int64_t batch_size, int64_t patch_size, int level, uint64_t seed, int threads,
             int ring_depth, int rank, int world_size, bool augment, uint32_t start_epoch, int64_t start_step,
             uint32_t end_epoch, bool skip_errors, bool float_output, int views) {
            d->CheckProcess();
            LoaderOptions o;
            o.sampler = {seed, batch_size, rank, world_size};
            o.patch_size = patch_size;
            o.level = level;
            o.threads = threads;
            o.ring_depth = ring_depth;
            o.augmentation.enabled = augment;
            o.views = views;
            o.start_epoch = start_epoch;
            o.start_step = start_step;
            o.end_epoch = end_epoch;
            o.on_error = skip_errors ? ErrorPolicy::kSkip : ErrorPolicy::kStop;
            o.format = float_output ? PixelFormat::kFloat32 : PixelFormat::kUint8;
            auto loader = Loader::Start(d->reader, o);
            if (!loader.ok()) Raise(loader.status());
            auto it = std::make_shared<BatchIterator>();
            it->dataset = d;
            it->loader = std::move(*loader);
            return it;
          },
          py::arg("batch_size") = 32, py::arg("patch_size") = 2048, py::arg("level") = 1, py::arg("seed") = 0,
          py::arg("threads") = 4, py::arg("ring_depth") = 4, py::arg("rank") = 0, py::arg("world_size") = 1,
          py::arg("augment") = true, py::arg("start_epoch") = 0, py::arg("start_step") = 0, py::arg("end_epoch") = 1,
          py::arg("skip_errors") = false, py::arg("float_output") = false, py::arg("views") = 1,
          "An iterator of batches (dicts of numpy arrays) from (start_epoch, start_step) to end_epoch.\n"
          "views > 1: batch_size × views patches, view v of sample j at v × batch_size + j.");

  py::class_<BatchIterator, std::shared_ptr<BatchIterator>>(m, "Loader")
      .def("__iter__", [](std::shared_ptr<BatchIterator> self) { return self; })
      .def_property_readonly("steps_per_epoch",
                             [](const BatchIterator& it) { return it.loader->sampler().steps_per_epoch(); })
      .def("__next__", [](std::shared_ptr<BatchIterator> self) {
        BatchIterator& it = *self;
        it.dataset->CheckProcess();
        Result<std::shared_ptr<const Batch>> next = std::shared_ptr<const Batch>();
        {
          py::gil_scoped_release release;
          next = it.loader->Next();
        }
        if (!next.ok()) Raise(next.status());
        if (!*next) throw py::stop_iteration();
        std::shared_ptr<const Batch> batch = *next;
        // The capsule keeps the slot, and the loader the slot belongs to: the images stay
        // valid while any view is alive, even after the iterator itself is gone.
        struct Holder {
          std::shared_ptr<BatchIterator> loader;  // destroyed after the batch (declared first)
          std::shared_ptr<const Batch> batch;
        };
        auto* holder = new Holder{self, batch};
        py::capsule owner(holder, [](void* p) {
          py::gil_scoped_release release;  // returning the slot may wake loader threads
          delete static_cast<Holder*>(p);
        });
        const py::ssize_t b = batch->size, s = batch->patch_size;
        py::dict out;
        if (batch->format == PixelFormat::kFloat32) {  // grey / 255
          const py::ssize_t f = sizeof(float);
          out["images"] = py::array_t<float>({b, s, s}, {s * s * f, s * f, f}, batch->float_images(), owner);
        } else {
          out["images"] = py::array_t<uint8_t>({b, s, s}, {s * s, s, py::ssize_t(1)}, batch->images, owner);
        }
        out["rows"] = Copy1D(batch->rows);
        out["mni"] = Copy1D(batch->mni).reshape({b, py::ssize_t(3)});
        out["area"] = Copy1D(batch->area);
        out["layer"] = Copy1D(batch->layer);
        out["hemisphere"] = Copy1D(batch->hemisphere);
        out["valid"] = Copy1D(batch->valid);
        py::list augmentation;
        for (const AugmentationParams& a : batch->augmentation) {
          py::dict p;
          p["theta"] = a.theta;
          p["shift_mm"] = a.shift_mm;
          p["shift_direction"] = a.shift_direction;
          p["mirror"] = a.mirror;
          p["alpha"] = a.alpha;
          p["beta"] = a.beta;
          p["gamma"] = a.gamma;
          p["filter"] = a.filter == PatchFilter::kBlur      ? "blur"
                        : a.filter == PatchFilter::kSharpen ? "sharpen"
                                                            : "none";
          p["sigma"] = a.sigma;
          p["delta"] = a.delta;
          augmentation.append(p);
        }
        out["augmentation"] = augmentation;
        out["epoch"] = batch->epoch;
        out["step"] = batch->step;
        out["skipped"] = batch->skipped;
        return out;
      });

  m.def(
      "set_threads",
      [](int threads) {
        static std::unique_ptr<tbb::global_control> limit;
        limit.reset();
        if (threads > 0)
          limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, threads);
      },
      py::arg("threads"), "Caps the threads one read decodes with (0: all cores). Loader workers are separate.");

  m.def(
      "open",
      [](const std::string& path, int64_t cache_mb, bool map_files) {
        auto [kvstore, context] = OpenStore(path, cache_mb, map_files);
        auto reader = PatchReader::Open(kvstore, context);
        if (!reader.ok()) Raise(reader.status());
        auto d = std::make_shared<Dataset>();
        d->kvstore = kvstore;
        d->reader = std::shared_ptr<const PatchReader>(std::move(*reader));
        return d;
      },
      py::arg("path"), py::arg("cache_mb") = 0, py::arg("map_files") = true,
      "Opens a dataset root (read-only).\n\n"
      "cache_mb: decoded-chunk cache in MiB, 0 (off) to 1048576 (1 TiB); worth it when reads overlap.\n"
      "map_files: read shards through memory mappings of the files (default), which saves a copy out of\n"
      "the page cache. A shard truncated in place by another program while it is mapped then raises\n"
      "SIGBUS and kills the process; map_files=False reads with pread instead, and such a shard becomes\n"
      "an ordinary error (IndexError / RuntimeError naming the file).");

  py::class_<ArrayHandle, std::shared_ptr<ArrayHandle>>(m, "Array")
      .def_property_readonly("shape", [](const ArrayHandle& a) { return a.array->metadata().shape; })
      .def_property_readonly(
          "dtype",
          [](const ArrayHandle& a) {
            return py::dtype::from_args(py::str(std::string(DataTypeName(a.array->metadata().data_type))));
          })
      .def(
          "read",
          [](const ArrayHandle& a, std::vector<int64_t> origin, std::vector<int64_t> shape) {
            a.CheckProcess();
            if (origin.size() != shape.size()) throw py::value_error("origin and shape differ in length");
            const Box box{origin, shape};
            const size_t item = a.array->item_size();
            py::array out =
                PooledArray(py::dtype::from_args(py::str(std::string(DataTypeName(a.array->metadata().data_type)))),
                            item, std::vector<py::ssize_t>(shape.begin(), shape.end()));
            const MutableByteSpan bytes(static_cast<uint8_t*>(out.mutable_data()), size_t(box.num_elements()) * item);
            Status status;
            {
              py::gil_scoped_release release;
              status = a.array->Read(box, bytes);
            }
            if (!status.ok()) Raise(status);
            return out;
          },
          py::arg("origin"), py::arg("shape"),
          "The elements [origin, origin + shape) as a new numpy array (outside the array: the fill value).");

  m.def(
      "open_array",
      [](const std::string& root, const std::string& path, int64_t cache_mb, bool map_files) {
        auto [kvstore, context] = OpenStore(root, cache_mb, map_files);
        // A section level of a dataset comes with its manifest's shard checks, as in the CLI.
        auto array = OpenDatasetArray(kvstore, path, context);
        if (!array.ok()) Raise(array.status());
        auto handle = std::make_shared<ArrayHandle>();
        handle->array = *array;
        return handle;
      },
      py::arg("root"), py::arg("path") = "", py::arg("cache_mb") = 0, py::arg("map_files") = true,
      "Opens the Zarr array at `path` below the folder `root` (read-only); cache_mb and map_files as for open().");
}
