#include "loader/loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "loader/warp.h"

namespace cytonet {

struct Loader::Slot {
  enum class State { kFree, kFilling, kReady, kHandedOut };
  State state = State::kFree;
  uint64_t sequence = 0;
  HostBuffer buffer;
  Batch batch;
  std::vector<SampleRef> samples;
  size_t patches = 0;     // samples × views
  size_t next_patch = 0;  // next patch a worker takes
  size_t remaining = 0;   // patches not yet written
  Status error;           // first error of this batch (kStop)
};

Status LoaderOptions::Check() const {
  auto in_range = [](const char* name, int64_t value, int64_t lo, int64_t hi) {
    if (value >= lo && value <= hi) return Status::Ok();
    return InvalidArgumentError(std::string("loader: ") + name + " must be in [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "], got " + std::to_string(value));
  };
  RETURN_IF_ERROR(in_range("threads", threads, 1, kMaxThreads));
  RETURN_IF_ERROR(in_range("ring_depth", ring_depth, 1, kMaxRingDepth));
  RETURN_IF_ERROR(in_range("views", views, 1, kMaxViews));
  if (augment_on_device && format != PixelFormat::kUint8) {
    return InvalidArgumentError("loader: augmentation on the device takes uint8 source boxes, not float");
  }
  return in_range("patch_size", patch_size, 1, int64_t{1} << 20);
}

Result<std::unique_ptr<Loader>> Loader::Start(std::shared_ptr<const PatchReader> reader, LoaderOptions options) {
  RETURN_IF_ERROR(options.Check());
  if (!reader || !reader->index())
    return FailedPreconditionError("loader: the dataset has no index/ (run cytonet index)");
  RETURN_IF_ERROR(CheckFilter(*reader->index(), options.filter));
  ASSIGN_OR_RETURN(Sampler sampler, Sampler::Make(SelectRows(*reader->index(), options.filter), options.sampler));
  if (options.start_step < 0 || options.start_step >= sampler.steps_per_epoch()) {
    return InvalidArgumentError("loader: start step " + std::to_string(options.start_step) + " is not in [0, " +
                                std::to_string(sampler.steps_per_epoch()) + ")");
  }
  RunImageOperationsSingleThreaded();
  std::unique_ptr<Loader> loader(new Loader(std::move(reader), options, std::move(sampler)));
  for (int t = 0; t < options.threads; ++t) loader->workers_.emplace_back([l = loader.get()] { l->Work(); });
  return loader;
}

Loader::Loader(std::shared_ptr<const PatchReader> reader, LoaderOptions options, Sampler sampler)
    : reader_(std::move(reader)), options_(std::move(options)), sampler_(std::move(sampler)) {
  next_epoch_ = options_.start_epoch;
  next_step_ = options_.start_step;
  for (int i = 0; i < options_.ring_depth; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->buffer = HostBuffer(size_t(batch_bytes()), options_.pin_memory);
    slots_.push_back(std::move(slot));
  }
}

Loader::~Loader() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  batch_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

namespace {
int64_t ImageSize(const LoaderOptions& o) {
  return o.augment_on_device ? PatchReader::SourceBoxSize(o.patch_size) : o.patch_size;
}
}  // namespace

int64_t Loader::batch_bytes() const {
  const int64_t side = ImageSize(options_);
  return options_.sampler.batch_size * options_.views * side * side * BytesPerPixel(options_.format);
}

int64_t Loader::MemoryBound(const LoaderOptions& o) {
  auto allocated = [](int64_t bytes) { return int64_t(HostBuffer::AllocatedBytes(size_t(bytes))); };
  const int64_t side = int64_t(std::ceil(std::sqrt(2.0) * double(o.patch_size))) + 3;
  // The source box, the blur/sharpen copy, the uint8 patch of float output.
  int64_t per_worker = allocated(side * side + int64_t(kWarpSourcePadding)) + allocated(o.patch_size * o.patch_size);
  if (o.format == PixelFormat::kFloat32) per_worker += allocated(o.patch_size * o.patch_size);
  // Decode buffers (a few chunks), stack and malloc arena of a worker: 2–5 MB measured.
  constexpr int64_t kWorkerAllowance = int64_t(8) << 20;
  per_worker += kWorkerAllowance;
  const int64_t image = ImageSize(o);
  const int64_t slots = allocated(o.sampler.batch_size * o.views * image * image * BytesPerPixel(o.format));
  return o.ring_depth * slots + o.threads * per_worker;
}

bool Loader::OpenBatch() {
  if (next_epoch_ >= options_.end_epoch) return false;
  auto free = std::find_if(slots_.begin(), slots_.end(), [](const auto& s) { return s->state == Slot::State::kFree; });
  if (free == slots_.end()) return false;
  if (order_epoch_ != next_epoch_) {  // once per epoch: the shuffle of all rows
    order_ = std::make_shared<const std::vector<int64_t>>(sampler_.EpochOrder(next_epoch_));
    order_epoch_ = next_epoch_;
  }
  Slot& slot = **free;
  slot.state = Slot::State::kFilling;
  slot.sequence = next_sequence_++;
  slot.samples = sampler_.Batch(next_epoch_, next_step_, order_.get());
  slot.patches = slot.samples.size() * size_t(options_.views);
  slot.next_patch = 0;
  slot.remaining = slot.patches;
  slot.error = Status::Ok();
  Batch& b = slot.batch;
  const size_t n = slot.patches;
  b.epoch = next_epoch_;
  b.step = next_step_;
  b.size = int64_t(n);
  b.patch_size = options_.patch_size;
  b.image_size = ImageSize(options_);
  b.augment_on_device = options_.augment_on_device;
  b.format = options_.format;
  b.images = slot.buffer.data();
  b.pinned = slot.buffer.pinned();
  b.rows.assign(n, 0);
  b.positions.assign(n, 0);
  b.mni.assign(3 * n, 0);
  b.area.assign(n, 0);
  b.layer.assign(n, 0);
  b.hemisphere.assign(n, 0);
  b.augmentation.assign(n, {});
  b.source.assign(options_.augment_on_device ? n : 0, {});
  b.valid.assign(n, 1);
  b.skipped = 0;
  if (++next_step_ == sampler_.steps_per_epoch()) next_step_ = 0, ++next_epoch_;
  return true;
}

void Loader::FillPatch(Slot& slot, size_t j) {
  const size_t view = j / slot.samples.size();
  const SampleRef& s = slot.samples[j % slot.samples.size()];
  const IndexTable& index = *reader_->index();
  Batch& b = slot.batch;
  const size_t row = size_t(s.row);
  b.rows[j] = s.row;
  b.positions[j] = s.position;
  b.mni[3 * j] = index.mni_x[row];
  b.mni[3 * j + 1] = index.mni_y[row];
  b.mni[3 * j + 2] = index.mni_z[row];
  b.area[j] = index.area[row];
  b.layer[j] = index.layer[row];
  b.hemisphere[j] = index.hemisphere[row];
  b.augmentation[j] =
      DrawAugmentation(options_.sampler.seed, s.epoch, s.position, options_.augmentation, uint32_t(view));
  const size_t pixels = size_t(b.image_size * b.image_size);
  const bool as_float = options_.format == PixelFormat::kFloat32;
  float* image_float = reinterpret_cast<float*>(slot.buffer.data()) + j * pixels;
  uint8_t* image = slot.buffer.data() + j * pixels;
  if (as_float) {  // read into a per-thread uint8 patch, then convert into the slot
    thread_local HostBuffer patch;
    if (patch.size() < pixels) patch = HostBuffer(pixels, false);
    image = patch.data();
  }
  Status status =
      options_.augment_on_device
          ? reader_->ReadRowSource(s.row, options_.level, options_.patch_size, b.augmentation[j], image, &b.source[j])
          : reader_->ReadRow(s.row, options_.level, options_.patch_size, b.augmentation[j], image);
  if (status.ok()) {
    if (as_float) {
      for (size_t i = 0; i < pixels; ++i) image_float[i] = float(image[i]) * (1.0f / 255.0f);
    }
    return;
  }
  const auto& [brain, section] = index.sections[index.section[row]];
  status = status.WithContext("epoch " + std::to_string(s.epoch) + " sample " + std::to_string(s.position) + " (" +
                              brain + "/" + section + " point " + std::to_string(index.point_id[row]) + ")");
  if (as_float) {  // slide background
    std::fill(image_float, image_float + pixels, 1.0f);
  } else {
    std::memset(image, 255, pixels);
  }
  std::lock_guard lock(mutex_);
  b.valid[j] = 0;
  ++b.skipped;
  if (options_.on_error == ErrorPolicy::kStop && slot.error.ok()) slot.error = std::move(status);
}

void Loader::Work() {
  std::unique_lock lock(mutex_);
  while (true) {
    // The oldest batch that still has samples to hand out, else a new one.
    Slot* slot = nullptr;
    for (auto& candidate : slots_) {
      if (candidate->state == Slot::State::kFilling && candidate->next_patch < candidate->patches &&
          (!slot || candidate->sequence < slot->sequence)) {
        slot = candidate.get();
      }
    }
    if (!slot && !stopping_ && OpenBatch()) continue;
    if (!slot) {
      if (stopping_) return;
      work_ready_.wait(lock);
      continue;
    }
    const size_t j = slot->next_patch++;
    lock.unlock();
    FillPatch(*slot, j);
    lock.lock();
    if (--slot->remaining == 0) {
      slot->state = Slot::State::kReady;
      batch_ready_.notify_all();
    }
  }
}

void Loader::ReturnSlot(Slot* slot) {
  {
    std::lock_guard lock(mutex_);
    slot->state = Slot::State::kFree;
  }
  work_ready_.notify_all();
}

Result<std::shared_ptr<const Batch>> Loader::Next() {
  std::unique_lock lock(mutex_);
  work_ready_.notify_all();
  while (true) {
    if (stopping_) return std::shared_ptr<const Batch>();  // ended (after an error)
    auto it = std::find_if(slots_.begin(), slots_.end(), [&](const auto& s) {
      return s->sequence == consumer_sequence_ && s->state == Slot::State::kReady;
    });
    if (it != slots_.end()) {
      Slot* slot = it->get();
      ++consumer_sequence_;
      if (!slot->error.ok()) {
        Status error = slot->error;
        slot->state = Slot::State::kFree;
        stopping_ = true;  // kStop: the loader ends here
        work_ready_.notify_all();
        return error;
      }
      slot->state = Slot::State::kHandedOut;
      return std::shared_ptr<const Batch>(&slot->batch, [this, slot](const Batch*) { ReturnSlot(slot); });
    }
    const bool pending = std::any_of(slots_.begin(), slots_.end(), [](const auto& s) {
      return s->state == Slot::State::kFilling || s->state == Slot::State::kReady;
    });
    if (std::all_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->state == Slot::State::kHandedOut; })) {
      // Waiting would never end: no slot is left to make the next batch in.
      return FailedPreconditionError("loader: all " + std::to_string(slots_.size()) +
                                     " ring slots are held by batches still in use; drop one (and its arrays) "
                                     "before asking for the next, or raise ring_depth");
    }
    if (!pending && next_epoch_ >= options_.end_epoch) return std::shared_ptr<const Batch>();
    batch_ready_.wait(lock);
  }
}

}  // namespace cytonet
