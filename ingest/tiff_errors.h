// libtiff reports errors and warnings through handlers. The writer uses the process-wide
// handler, which keeps the last error message per thread. Readers open each file as a
// TiffReadHandle, whose messages libtiff hands to that handle alone, so pooled handles read
// on several threads never see each other's messages.
#pragma once

#include <tiffio.h>

#include <cstdarg>
#include <memory>
#include <string>

namespace cytonet {

// Installs the handler (once per process) and silences libtiff's warnings.
void CaptureTiffErrors();
// The last libtiff error message of this thread ("" if none), cleared by the call.
std::string TakeTiffError();

// True for a libtiff warning about strip or tile offsets or byte counts. libtiff then goes
// on with a table it patched up (missing entries read as offset 0), so the pixels it returns
// are other bytes of the file: for a reader this is an error.
bool IsTiffLayoutWarning(const std::string& message);

// A TIFF opened for reading with handlers of its own (libtiff ≥ 4.5). A handle is used by
// one thread at a time, and libtiff calls the handlers on that thread, so the record needs
// no lock.
class TiffReadHandle {
 public:
  // nullptr when libtiff cannot open `path`; `*error` then says why.
  static std::unique_ptr<TiffReadHandle> Open(const std::string& path, const char* mode, std::string* error);
  ~TiffReadHandle();
  TiffReadHandle(const TiffReadHandle&) = delete;
  TiffReadHandle& operator=(const TiffReadHandle&) = delete;

  TIFF* get() const { return tif_; }
  // The first error or layout warning since the last call ("" if none); clears it. Other
  // warnings (unknown tags, ...) are dropped.
  std::string TakeProblem();

 private:
  TiffReadHandle() = default;
  static int OnError(TIFF* tif, void* self, const char* module, const char* format, va_list args);
  static int OnWarning(TIFF* tif, void* self, const char* module, const char* format, va_list args);

  TIFF* tif_ = nullptr;
  std::string problem_;
};

}  // namespace cytonet
