// Writes arrays with our store so the interop tests can read them with zarr-python and
// tensorstore. Data come from raw C-order files the test made with numpy.
//
//   interop_helper write ROOT PATH METADATA.json DATA.raw [TILE]
//       METADATA.json is a v3 zarr.json or a v2 .zarray; with TILE, the data are written
//       in TILE×TILE boxes (exercising read-modify-write of shards) instead of at once.
//   interop_helper write-ome ROOT GROUP PIXEL_SIZE_UM META0.json DATA0.raw [META1 DATA1 ...]
#include <cstdio>
#include <fstream>
#include <iterator>

#include "store/array.h"
#include "store/ome_zarr.h"

namespace cytonet {
namespace {

Result<Bytes> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  return ToBytes(AsBytes(s));
}

Result<std::shared_ptr<ZarrArray>> WriteArray(std::shared_ptr<KvStore> kv, const std::string& path,
                                              const std::string& meta_file, const std::string& data_file,
                                              int64_t tile) {
  ASSIGN_OR_RETURN(Bytes meta_bytes, ReadFile(meta_file));
  ASSIGN_OR_RETURN(Json json, ParseJson(meta_bytes, meta_file));
  ArrayMetadata metadata;
  if (json.value("zarr_format", 3) == 2) {
    ASSIGN_OR_RETURN(metadata, ParseArrayMetadataV2(json, meta_file));
  } else {
    ASSIGN_OR_RETURN(metadata, ParseArrayMetadataV3(json, meta_file));
  }
  ASSIGN_OR_RETURN(auto array, ZarrArray::Create(kv, path, metadata, std::make_shared<StoreContext>()));
  ASSIGN_OR_RETURN(Bytes data, ReadFile(data_file));
  const Box domain = array->domain();
  if (tile <= 0 || domain.rank() != 2) {
    RETURN_IF_ERROR(array->Write(domain, data));
    return array;
  }
  const size_t item = array->item_size();
  for (int64_t y = 0; y < domain.shape[0]; y += tile) {
    for (int64_t x = 0; x < domain.shape[1]; x += tile) {
      Box box{{y, x}, {std::min(tile, domain.shape[0] - y), std::min(tile, domain.shape[1] - x)}};
      Bytes part(box.num_elements() * item);
      CopyRegion(data.data(), domain, part.data(), box, box, item);
      RETURN_IF_ERROR(array->Write(box, part));
    }
  }
  return array;
}

int Run(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "write" && (argc == 6 || argc == 7)) {
    auto kv = OpenFileKvStore(argv[2], true);
    if (!kv.ok()) return std::fprintf(stderr, "%s\n", kv.status().ToString().c_str()), 1;
    auto array = WriteArray(*kv, argv[3], argv[4], argv[5], argc == 7 ? std::stoll(argv[6]) : 0);
    if (!array.ok()) return std::fprintf(stderr, "%s\n", array.status().ToString().c_str()), 1;
    return 0;
  }
  if (command == "write-ome" && argc >= 7 && argc % 2 == 1) {
    auto kv = OpenFileKvStore(argv[2], true);
    if (!kv.ok()) return std::fprintf(stderr, "%s\n", kv.status().ToString().c_str()), 1;
    const std::string group = argv[3];
    const int levels = (argc - 5) / 2;
    Status st = WriteMultiscaleGroup(**kv, group, AreaMeanPyramid(group, levels, std::stod(argv[4])));
    for (int k = 0; k < levels && st.ok(); ++k) {
      st = WriteArray(*kv, JoinKey(group, std::to_string(k)), argv[5 + 2 * k], argv[6 + 2 * k], 0).status();
    }
    if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    return 0;
  }
  std::fprintf(stderr, "usage: see the comment at the top of interop_helper.cc\n");
  return 2;
}

}  // namespace
}  // namespace cytonet

int main(int argc, char** argv) { return cytonet::Run(argc, argv); }
