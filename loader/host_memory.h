// Batch buffers: page-locked (pinned) host memory when a CUDA runtime and device are
// present, so train/ can copy batches to the GPU asynchronously; ordinary 64-byte-aligned
// memory otherwise. The CUDA runtime is looked up at run time (dlopen), so the loader
// builds and runs on machines without CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cytonet {

class HostBuffer {
 public:
  HostBuffer() = default;
  // `pin`: try page-locked memory first.
  HostBuffer(size_t bytes, bool pin);
  ~HostBuffer();
  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  // Bytes an unpinned buffer of `bytes` occupies: large ones are whole 2 MB huge pages.
  static size_t AllocatedBytes(size_t bytes);

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool pinned() const { return pinned_; }

 private:
  void Free();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool pinned_ = false;
};

}  // namespace cytonet
