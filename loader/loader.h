// Loader: the prefetching patch loader for training.
//
// A pool of worker threads (not processes) shares one PatchReader (one store, its caches
// and open files). Batches go into a ring of `ring_depth` preallocated slots; a worker
// takes the next sample of the oldest unfinished batch, reads and augments it straight
// into its place in the slot, and a batch is handed to the consumer, in order, when all its
// samples are done. When every slot is full or waiting for the consumer, workers wait:
// back-pressure, bounded memory.
//
// Memory: ring_depth × batch_size × views × patch_size² × (1 or 4 for float) bytes of batch buffers
// (pinned when CUDA is present), plus per worker one source box of up to
// (⌈√2·patch_size⌉ + 3)² bytes, one patch_size² blur buffer (one more uint8 patch for float
// output) and 8 MB for decode buffers, stack and allocator arena; buffers are rounded up to
// 2 MB huge pages. Plus the store's caches (StoreContext options). Loader::MemoryBound
// computes it; bench-loader prints it next to the measured peak.
//
// Determinism: the rows of batch (epoch, step) come from the Sampler and every augmentation
// from (seed, epoch, position), so the bytes of every batch are the same whatever the
// number of threads, and a loader started at (epoch, step) gives exactly the batches an
// uninterrupted run gives from there.
//
// Errors: under ErrorPolicy::kStop the first failed sample's error (naming the index row,
// the section, the point and the chunk) comes back from Next(); under kSkip the sample is
// filled with background, marked invalid in the batch, and counted.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "loader/augmentation.h"
#include "loader/host_memory.h"
#include "loader/patch_reader.h"
#include "loader/sampler.h"

namespace cytonet {

enum class ErrorPolicy { kStop, kSkip };

// uint8 by default: a quarter of the bytes to copy to the GPU, where conversion is free.
// kFloat32 gives grey values / 255 in [0, 1] for consumers that want floats on the host.
enum class PixelFormat { kUint8, kFloat32 };
inline int64_t BytesPerPixel(PixelFormat f) { return f == PixelFormat::kFloat32 ? 4 : 1; }

struct LoaderOptions {
  SamplerOptions sampler;
  SampleFilter filter;
  AugmentationOptions augmentation;
  int level = 1;
  int64_t patch_size = 2048;
  // Augmented views per sample: a batch holds batch_size × views patches, view v of
  // sample j at v × batch_size + j (so rows i and i + batch_size of a two-view batch are
  // the same point, as NT-Xent pairs them). Views share the point and differ only in
  // augmentation; view 0 is the patch a one-view loader gives.
  int views = 1;
  int threads = 4;
  int ring_depth = 4;
  ErrorPolicy on_error = ErrorPolicy::kStop;
  PixelFormat format = PixelFormat::kUint8;
  // Augmentation on the device (train/device_augmentation.h): a worker reads each patch's
  // source box (PatchReader::ReadSource, SourceBoxSize(patch_size)² pixels) and draws its
  // augmentation, but leaves the warp, intensity and filter to the consumer, which gets
  // the boxes in `images` and each patch's SourceMap in `source`. uint8 only.
  bool augment_on_device = false;
  uint32_t start_epoch = 0;
  int64_t start_step = 0;
  uint32_t end_epoch = UINT32_MAX;  // the loader ends before this epoch
  bool pin_memory = true;

  static constexpr int kMaxThreads = 1024;
  static constexpr int kMaxViews = 64;
  static constexpr int kMaxRingDepth = 1024;
  // InvalidArgument naming the first option out of range (Loader::Start calls it first,
  // so every front-end gets the same checks and messages).
  Status Check() const;
};

// One batch, valid until the shared_ptr is dropped (its slot then returns to the ring).
// Drop every batch before the Loader, and hold at most ring_depth − 1 at a time (the
// workers need a free slot to make the next one).
struct Batch {
  uint32_t epoch = 0;
  int64_t step = 0;
  int64_t size = 0, patch_size = 0;  // size: patches, batch_size × views
  // The side of each image in `images`: patch_size, or the source box's side when the
  // augmentation is left to the device (then `source` says where each patch lies in it).
  int64_t image_size = 0;
  bool augment_on_device = false;
  std::vector<SourceMap> source;
  PixelFormat format = PixelFormat::kUint8;
  // size × image_size × image_size pixels of `format` (float_images() for kFloat32).
  const uint8_t* images = nullptr;
  const float* float_images() const { return reinterpret_cast<const float*>(images); }
  bool pinned = false;
  std::vector<int64_t> rows;
  std::vector<uint32_t> positions;
  std::vector<double> mni;  // size × 3 (x, y, z) mm
  std::vector<int32_t> area;
  std::vector<int8_t> layer;
  std::vector<uint8_t> hemisphere;
  std::vector<AugmentationParams> augmentation;
  std::vector<uint8_t> valid;  // 0 where the sample was skipped (ErrorPolicy::kSkip)
  int64_t skipped = 0;
};

class Loader {
 public:
  static Result<std::unique_ptr<Loader>> Start(std::shared_ptr<const PatchReader> reader, LoaderOptions options);
  ~Loader();  // stops the workers

  // The next batch in (epoch, step) order; nullptr after the last (end_epoch). Blocks
  // until it is ready. An error under ErrorPolicy::kStop ends the loader.
  Result<std::shared_ptr<const Batch>> Next();
  const Sampler& sampler() const { return sampler_; }
  int64_t batch_bytes() const;
  // The documented memory bound in bytes, without the store's caches: the ring's slots plus
  // one source box per worker (the largest box a rotated patch reads, on huge pages).
  static int64_t MemoryBound(const LoaderOptions& options);

 private:
  struct Slot;
  Loader(std::shared_ptr<const PatchReader> reader, LoaderOptions options, Sampler sampler);
  void Work();
  // With the lock held: start the next batch in a free slot, if any.
  bool OpenBatch();
  // Patch j of the slot's batch: view j / samples of sample j % samples.
  void FillPatch(Slot& slot, size_t j);
  void ReturnSlot(Slot* slot);

  std::shared_ptr<const PatchReader> reader_;
  LoaderOptions options_;
  Sampler sampler_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::thread> workers_;

  std::mutex mutex_;
  std::condition_variable work_ready_, batch_ready_;
  bool stopping_ = false;
  uint32_t next_epoch_ = 0;
  int64_t next_step_ = 0;
  uint64_t next_sequence_ = 0, consumer_sequence_ = 0;
  uint32_t order_epoch_ = UINT32_MAX;
  std::shared_ptr<const std::vector<int64_t>> order_;
};

}  // namespace cytonet
