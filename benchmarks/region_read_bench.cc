// Region-read benchmark helper: the synthetic section and the decode-only bound. The driver
// (region_read.py) times ours, tensorstore and zarr-python on the same files and regions in
// one run and prints the ratios.
//
//   region_read_bench generate ROOT [--size N --shard S --inner I --cname C --shuffle S --clevel L]
//   region_read_bench read ROOT REGIONS.json --threads T [--chunk-cache-mb M] --out RESULT.json
//
// `read` times the decode-only bound: decompressing just the inner chunks each region needs,
// from bytes already in memory, with the same thread count: whole chunks when the chunk
// cache is on, else only the rows (blosc blocks) the region covers, as ours does. (The
// driver times our reader itself, through the Python module, interleaved with the peers.)
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "benchmarks/synthetic_section.h"
#include "store/sharding.h"

namespace cytonet::bench {
namespace {

using Clock = std::chrono::steady_clock;

int Fail(const Status& st) {
  std::fprintf(stderr, "region_read_bench: %s\n", st.ToString().c_str());
  return 1;
}

// The compressed inner chunks a region needs, fetched ahead of time through the array's
// own chunk layer, with the rows of each that the region covers.
struct RegionChunks {
  struct Chunk {
    Bytes encoded;
    size_t offset = 0, bytes = 0;  // the decoded byte range the region needs (whole rows)
  };
  std::vector<Chunk> chunks;
};

Result<RegionChunks> FetchRegionChunks(const ZarrArray& array, const Box& region) {
  const ChunkStore& store = array.chunk_store();
  const auto& shape = store.read_chunk_shape();
  std::vector<GridCell> cells;
  for (int64_t iy = region.origin[0] / shape[0]; iy <= (region.origin[0] + region.shape[0] - 1) / shape[0]; ++iy) {
    for (int64_t ix = region.origin[1] / shape[1]; ix <= (region.origin[1] + region.shape[1] - 1) / shape[1]; ++ix) {
      cells.push_back({iy, ix});
    }
  }
  RegionChunks fetched;
  fetched.chunks.resize(cells.size());
  std::vector<bool> stored(cells.size());
  RETURN_IF_ERROR(store.Fetch(cells, [&](size_t i, std::optional<ByteSpan> encoded) {
    if (!encoded) return Status::Ok();
    stored[i] = true;
    const int64_t top = std::max(region.origin[0], cells[i][0] * shape[0]);
    const int64_t bottom = std::min(region.origin[0] + region.shape[0], (cells[i][0] + 1) * shape[0]);
    fetched.chunks[i] = {Bytes(encoded->begin(), encoded->end()), size_t((top - cells[i][0] * shape[0]) * shape[1]),
                         size_t((bottom - top) * shape[1])};
    return Status::Ok();
  }));
  std::vector<RegionChunks::Chunk> kept;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (stored[i]) kept.push_back(std::move(fetched.chunks[i]));
  }
  fetched.chunks = std::move(kept);
  return fetched;
}

int Generate(const std::string& root, const SectionSpec& spec) {
  auto kv = OpenFileKvStore(root, true);
  if (!kv.ok()) return Fail(kv.status());
  auto context = std::make_shared<StoreContext>();
  auto existing = ZarrArray::Open(*kv, "section", context);
  if (existing.ok() &&
      (*existing)->metadata().attributes.value("synthetic_section", Json()) == Json({{"size", spec.size},
                                                                                     {"shard", spec.shard},
                                                                                     {"inner", spec.inner},
                                                                                     {"cname", spec.cname},
                                                                                     {"shuffle", spec.shuffle},
                                                                                     {"clevel", spec.clevel},
                                                                                     {"seed", spec.seed}})) {
    std::fprintf(stderr, "%s/section is up to date\n", root.c_str());
    return 0;
  }
  const auto start = Clock::now();
  auto array = WriteSyntheticSection(*kv, "section", spec, context);
  if (!array.ok()) return Fail(array.status());
  std::fprintf(stderr, "wrote %s/section in %.1f s\n", root.c_str(),
               std::chrono::duration<double>(Clock::now() - start).count());
  return 0;
}

int Read(const std::string& root, const std::string& regions_file, int threads, size_t chunk_cache_bytes,
         const std::string& out_file) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  auto kv = OpenFileKvStore(root, false);
  if (!kv.ok()) return Fail(kv.status());
  StoreContextOptions options;
  options.chunk_cache_bytes = chunk_cache_bytes;
  auto array = ZarrArray::Open(*kv, "section", std::make_shared<StoreContext>(options));
  if (!array.ok()) return Fail(array.status());
  std::ifstream in(regions_file);
  const Json spec = Json::parse(in);
  const int64_t side = spec["size"].get<int64_t>();
  std::vector<Box> regions;
  for (const Json& r : spec["origins"])
    regions.push_back(Box{{r[0].get<int64_t>(), r[1].get<int64_t>()}, {side, side}});

  // The bound's input: each region's compressed inner chunks, fetched before timing. (Our
  // reader itself is timed by the driver, through the Python module, beside the peers.)
  std::vector<RegionChunks> prefetched;
  for (const Box& box : regions) {
    auto chunks = FetchRegionChunks(**array, box);
    if (!chunks.ok()) return Fail(chunks.status());
    prefetched.push_back(std::move(*chunks));
  }
  std::vector<double> bound;
  const CodecChain& inner = (*array)->chunk_store().read_codecs();
  for (const RegionChunks& chunks : prefetched) {
    const auto t0 = Clock::now();
    const bool partial = chunk_cache_bytes == 0;  // ours decodes only the rows it needs then
    tbb::parallel_for(size_t{0}, chunks.chunks.size(), [&](size_t i) {
      thread_local Bytes scratch;
      const auto& chunk = chunks.chunks[i];
      if (partial && chunk.bytes < inner.layout().num_bytes()) {
        scratch.resize(chunk.bytes);
        if (!inner.DecodePart(chunk.encoded, chunk.offset, scratch).ok()) std::abort();
      } else {
        scratch.resize(inner.layout().num_bytes());
        if (!inner.Decode(chunk.encoded, scratch).ok()) std::abort();
      }
    });
    bound.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::ofstream(out_file) << Json({{"decode_only", bound}}).dump();
  return 0;
}

}  // namespace
}  // namespace cytonet::bench

int main(int argc, char** argv) {
  CLI::App app{"Region-read benchmark (our side); run benchmarks/region_read.py for the comparison"};
  app.require_subcommand(1);
  std::string root, regions, out;
  cytonet::bench::SectionSpec spec;
  int threads = 1;
  size_t chunk_cache_mb = 0;
  auto* gen = app.add_subcommand("generate", "Write the synthetic section array under ROOT/section");
  gen->add_option("root", root)->required();
  gen->add_option("--size", spec.size);
  gen->add_option("--shard", spec.shard);
  gen->add_option("--inner", spec.inner);
  gen->add_option("--cname", spec.cname);
  gen->add_option("--shuffle", spec.shuffle);
  gen->add_option("--clevel", spec.clevel);
  auto* read = app.add_subcommand("read", "Time the decode-only bound of the regions listed in REGIONS.json");
  read->add_option("root", root)->required();
  read->add_option("regions", regions)->required();
  read->add_option("--threads", threads);
  read->add_option("--chunk-cache-mb", chunk_cache_mb, "Decoded-chunk cache budget (0 = off)");
  read->add_option("--out", out)->required();
  CLI11_PARSE(app, argc, argv);
  if (gen->parsed()) return cytonet::bench::Generate(root, spec);
  return cytonet::bench::Read(root, regions, threads, chunk_cache_mb << 20, out);
}
