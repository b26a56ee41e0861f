#include "loader/host_memory.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>

namespace cytonet {
namespace {

// cudaHostAlloc / cudaFreeHost from whichever CUDA runtime the process can load.
struct CudaHost {
  using Alloc = int (*)(void**, size_t, unsigned int);
  using Free = int (*)(void*);
  Alloc alloc = nullptr;
  Free free = nullptr;
};

const CudaHost& Cuda() {
  static CudaHost cuda;
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* name : {"libcudart.so", "libcudart.so.13", "libcudart.so.12"}) {
      void* library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!library) continue;
      cuda.alloc = reinterpret_cast<CudaHost::Alloc>(dlsym(library, "cudaHostAlloc"));
      cuda.free = reinterpret_cast<CudaHost::Free>(dlsym(library, "cudaFreeHost"));
      if (cuda.alloc && cuda.free) return;
      cuda = {};
    }
  });
  return cuda;
}

constexpr size_t kHugePage = size_t(2) << 20;

}  // namespace

size_t HostBuffer::AllocatedBytes(size_t bytes) {
  const size_t alignment = bytes >= kHugePage ? kHugePage : 64;
  return (bytes + 64 + alignment - 1) / alignment * alignment;  // 64: room past the end
}

HostBuffer::HostBuffer(size_t bytes, bool pin) : size_(bytes) {
  if (pin && bytes > 0 && Cuda().alloc) {
    void* p = nullptr;
    if (Cuda().alloc(&p, bytes, /*cudaHostAllocPortable=*/1) == 0 && p) {  // fails without a device
      data_ = static_cast<uint8_t*>(p);
      pinned_ = true;
      return;
    }
  }
  // Large buffers on transparent huge pages where the kernel allows them (madvise mode):
  // the warp reads its source along rotated lines, one page per row without them.
  const size_t rounded = AllocatedBytes(bytes);
  const bool huge = bytes >= kHugePage;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(huge ? kHugePage : 64, rounded));
  if (!data_) throw std::bad_alloc();
  if (huge) madvise(data_, rounded, MADV_HUGEPAGE);
}

HostBuffer::~HostBuffer() { Free(); }

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      pinned_(std::exchange(other.pinned_, false)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    Free();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    pinned_ = std::exchange(other.pinned_, false);
  }
  return *this;
}

void HostBuffer::Free() {
  if (!data_) return;
  if (pinned_) {
    Cuda().free(data_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
}

}  // namespace cytonet
