#include "ingest/tiff_errors.h"

#include <tiffio.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace cytonet {
namespace {

thread_local std::string last_tiff_error;

void OnTiffError(const char* module, const char* format, va_list args) {
  char text[512];
  std::vsnprintf(text, sizeof(text), format, args);
  last_tiff_error = module ? std::string(module) + ": " + text : std::string(text);
}

}  // namespace

void CaptureTiffErrors() {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(OnTiffError);
    TIFFSetWarningHandler(nullptr);
  });
}

std::string TakeTiffError() {
  std::string message;
  message.swap(last_tiff_error);
  return message.empty() ? "libtiff error" : message;
}

}  // namespace cytonet
