// cytonet: the command-line tool. Each subcommand parses its arguments and calls the
// modules; no logic of its own lives here.
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/image_io.h"
#include "dataset/dataset.h"
#include "store/array.h"
#include "store/group.h"
#include "store/ome_zarr.h"

namespace cytonet {
namespace {

using cli::Fail;

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof(text), u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return text;
}

// "y0:y1,x0:x1" → Box.
Result<Box> ParseBox(const std::string& text) {
  Box box;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(start, end - start);
    const size_t colon = part.find(':');
    try {
      if (colon == std::string::npos) throw std::invalid_argument(part);
      size_t used_lo = 0, used_hi = 0;
      const int64_t lo = std::stoll(part.substr(0, colon), &used_lo);
      const int64_t hi = std::stoll(part.substr(colon + 1), &used_hi);
      if (used_lo != colon || used_hi != part.size() - colon - 1 || hi < lo) {
        throw std::invalid_argument(part);
      }
      box.origin.push_back(lo);
      box.shape.push_back(hi - lo);
    } catch (const std::exception&) {
      return InvalidArgumentError("box '" + text + "': expected start:stop per axis, e.g. 0:512,1024:2048");
    }
    start = end + 1;
  }
  return box;
}

std::string CodecSummary(const Json& codecs) {
  std::string s;
  for (const Json& c : codecs) {
    if (!s.empty()) s += " → ";
    const std::string name = c.is_string() ? c.get<std::string>() : c.value("name", std::string("?"));
    s += name;
    const Json config = c.is_object() ? c.value("configuration", Json::object()) : Json::object();
    if (name == "blosc")
      s += "(" + config.value("cname", std::string()) + ", " + config.value("shuffle", std::string()) + ")";
    if (name == "sharding_indexed") {
      s += "(inner " + config.value("chunk_shape", Json::array()).dump() + ": " +
           CodecSummary(config.value("codecs", Json::array())) + "; index at " +
           config.value("index_location", std::string("end")) + ")";
    }
  }
  return s;
}

int RunInfo(const std::string& root, const std::string& path) {
  auto kvstore = OpenFileKvStore(root, /*create=*/false);
  if (!kvstore.ok()) return Fail(kvstore.status());
  auto nodes = ListNodes(**kvstore, path);
  if (!nodes.ok()) return Fail(nodes.status());
  if (nodes->empty())
    return Fail(NotFoundError("no Zarr nodes under " + (*kvstore)->Describe(path.empty() ? "." : path)));
  auto context = std::make_shared<StoreContext>();
  double total_stored = 0, total_decoded = 0;
  // Errors are listed in place (the rest of the tree is still worth showing) and counted:
  // any of them makes the exit status non-zero, so scripts do not take a partial listing
  // for a healthy store.
  int errors = 0;
  auto print_error = [&](const std::string& indent, const std::string& name, const Status& status) {
    std::printf("%s%s  ERROR %s\n", indent.c_str(), name.c_str(), status.ToString().c_str());
    ++errors;
  };
  for (const NodeInfo& node : *nodes) {
    const int depth = node.path.empty() ? 0 : 1 + static_cast<int>(std::count(node.path.begin(), node.path.end(), '/'));
    const std::string indent(2 * depth, ' ');
    const std::string name = node.path.empty() ? "/" : node.path.substr(node.path.rfind('/') + 1);
    if (node.type == NodeType::kGroup) {
      std::string note;
      Status ome_error;
      if (node.attributes.contains("ome") || node.attributes.contains("multiscales")) {
        auto ms = ParseMultiscale(node.attributes, node.path);
        if (ms.ok()) {
          note = "  [OME-Zarr " + ms->version + " image, " + std::to_string(ms->levels.size()) + " levels";
          if (!ms->levels.empty() && !ms->levels[0].scale.empty()) {
            note += ", " + std::to_string(ms->levels[0].scale.back()).substr(0, 6) + " " +
                    (ms->axes.empty() ? std::string() : ms->axes.back().unit) + "/px";
          }
          note += "]";
        } else {
          ome_error = ms.status();
        }
      }
      std::printf("%s%s/ (group, v%d)%s\n", indent.c_str(), name.c_str(), node.zarr_format, note.c_str());
      if (!ome_error.ok()) print_error(indent + "  ", "(OME-Zarr attributes)", ome_error);
      continue;
    }
    auto array = ZarrArray::Open(*kvstore, node.path, context);
    if (!array.ok()) {
      print_error(indent, name, array.status());
      continue;
    }
    const ArrayMetadata& m = (*array)->metadata();
    auto keys = (*kvstore)->List(node.path.empty() ? "" : node.path + "/");
    double stored = 0;
    size_t chunks = 0;
    if (!keys.ok()) {
      print_error(indent, name, keys.status());
      continue;
    }
    for (const std::string& key : *keys) {
      auto size = (*kvstore)->Size(key);
      if (!size.ok()) {
        print_error(indent, name, size.status());
        continue;
      }
      if (*size) stored += static_cast<double>(**size);
      if (!key.ends_with("zarr.json") && !key.ends_with(".zarray") && !key.ends_with(".zattrs")) ++chunks;
    }
    double decoded = static_cast<double>(DataTypeSize(m.data_type));
    for (int64_t e : m.shape) decoded *= static_cast<double>(e);
    total_stored += stored;
    total_decoded += decoded;
    std::string shape = "[", chunk = "[";
    for (size_t d = 0; d < m.rank(); ++d) {
      shape += (d ? ", " : "") + std::to_string(m.shape[d]);
      chunk += (d ? ", " : "") + std::to_string(m.chunk_shape[d]);
    }
    std::printf("%s%s  %s %s  chunks %s]  %zu objects  stored %s / decoded %s (%.2fx)\n%s    codecs: %s\n",
                indent.c_str(), name.c_str(), std::string(DataTypeName(m.data_type)).c_str(), (shape + "]").c_str(),
                chunk.c_str(), chunks, HumanBytes(stored).c_str(), HumanBytes(decoded).c_str(),
                stored > 0 ? decoded / stored : 0.0, indent.c_str(), CodecSummary(m.codecs).c_str());
  }
  std::printf("total: stored %s, decoded %s\n", HumanBytes(total_stored).c_str(), HumanBytes(total_decoded).c_str());
  if (errors > 0) {
    std::fflush(stdout);  // the listing before the summary when both go to one terminal
    std::fprintf(stderr, "cytonet: info: %d error%s under %s (marked ERROR above)\n", errors, errors == 1 ? "" : "s",
                 (*kvstore)->Describe(path.empty() ? "." : path).c_str());
    return 1;
  }
  return 0;
}

int RunRead(const std::string& root, const std::string& array_path, const std::string& box_text,
            const std::string& out_path) {
  auto kvstore = OpenFileKvStore(root, /*create=*/false);
  if (!kvstore.ok()) return Fail(kvstore.status());
  // A section level of a dataset is checked against its manifest (a lost shard is an error).
  auto array = OpenDatasetArray(*kvstore, array_path, std::make_shared<StoreContext>());
  if (!array.ok()) return Fail(array.status());
  Box box = (*array)->domain();
  if (!box_text.empty()) {
    auto parsed = ParseBox(box_text);
    if (!parsed.ok()) return Fail(parsed.status());
    if (parsed->rank() != box.rank()) {
      return Fail(InvalidArgumentError("box " + parsed->ToString() + " has " + std::to_string(parsed->rank()) +
                                       " axes, the array " + std::to_string(box.rank())));
    }
    box = *parsed;
  }
  const bool raw = out_path.ends_with(".raw");
  const DataType type = (*array)->metadata().data_type;
  // Refuse an output that cannot hold the values before reading (boxes can be large).
  if (!raw) {
    if (box.rank() != 2) return Fail(InvalidArgumentError(out_path + ": PNG/TIFF output needs a 2-D box; use .raw"));
    if (Status st = CheckImageType(out_path, type); !st.ok()) return Fail(st);
  }
  auto data = (*array)->Read(box);
  if (!data.ok()) return Fail(data.status());
  if (raw) {
    std::ofstream out(out_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data->data()), static_cast<std::streamsize>(data->size()));
    if (!out) return Fail(IOError("writing " + out_path));
  } else {
    Status st = WriteGreyImage(out_path, *data, box.shape[0], box.shape[1], type);
    if (!st.ok()) return Fail(st);
  }
  std::printf("read %s of %s into %s (%s)\n", box.ToString().c_str(),
              (*kvstore)->Describe(array_path.empty() ? "." : array_path).c_str(), out_path.c_str(),
              HumanBytes(static_cast<double>(data->size())).c_str());
  return 0;
}

}  // namespace

namespace cli {

int Fail(const Status& status) {
  std::fprintf(stderr, "cytonet: %s\n", status.ToString().c_str());
  return status.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

void LimitThreads(int threads) {
  static std::unique_ptr<tbb::global_control> limit;
  if (threads > 0) limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, threads);
}

}  // namespace cli
}  // namespace cytonet

int main(int argc, char** argv) {
  CLI::App app{"cytonet: chunked microscopy datasets for CytoNet pretraining and evaluation"};
  app.require_subcommand(1);

  std::string root, path;
  auto* info = app.add_subcommand("info", "Show the Zarr hierarchy: shapes, codecs, stored vs decoded bytes");
  info->add_option("root", root, "Dataset (or any Zarr) root directory")->required();
  info->add_option("--path", path, "Node below the root to start from");

  std::string array_path, box, out;
  auto* read = app.add_subcommand("read", "Read a region of an array into a PNG, TIFF or raw file");
  read->add_option("root", root, "Zarr root directory")->required();
  read->add_option("--array", array_path, "Array path below the root, e.g. sections/b01/s0001/1");
  read->add_option("--box", box, "Region as start:stop per axis, e.g. 0:2048,4096:6144 (default: all)");
  read->add_option("--out", out, "Output file: .png (uint8/uint16), .tif/.tiff (any type) or .raw")->required();

  const std::vector<cytonet::cli::Command> commands = {
      cytonet::cli::AddPhantomCommand(app),     cytonet::cli::AddIngestCommand(app),
      cytonet::cli::AddIndexCommand(app),       cytonet::cli::AddQueryCommand(app),
      cytonet::cli::AddVerifyCommand(app),      cytonet::cli::AddSampleCommand(app),
      cytonet::cli::AddBenchLoaderCommand(app), cytonet::cli::AddTrainCommand(app),
      cytonet::cli::AddExtractCommand(app),     cytonet::cli::AddReportCommand(app)};

  CLI11_PARSE(app, argc, argv);
  for (const auto& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  if (info->parsed()) return cytonet::RunInfo(root, path);
  if (read->parsed()) return cytonet::RunRead(root, array_path, box, out);
  return 2;
}
