#include "ingest/tiff_errors.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <mutex>

// Per-handle handlers (TIFFOpenExt) came with libtiff 4.5; TIFFLIB_AT_LEAST with them too.
#if !defined(TIFFLIB_AT_LEAST)
#error "cytonet needs libtiff 4.5 or newer (per-handle error handlers)"
#elif !TIFFLIB_AT_LEAST(4, 5, 0)
#error "cytonet needs libtiff 4.5 or newer (per-handle error handlers)"
#endif

namespace cytonet {
namespace {

thread_local std::string last_tiff_error;

std::string FormatTiffMessage(const char* module, const char* format, va_list args) {
  char text[512];
  std::vsnprintf(text, sizeof(text), format, args);
  return module && *module ? std::string(module) + ": " + text : std::string(text);
}

void OnTiffError(const char* module, const char* format, va_list args) {
  last_tiff_error = FormatTiffMessage(module, format, args);
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

bool IsTiffLayoutWarning(const std::string& message) {
  std::string lower(message);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  auto has = [&](const char* word) { return lower.find(word) != std::string::npos; };
  // "Incorrect count for "TileOffsets"; tag ignored", "Bogus "StripByteCounts" field, ...",
  // "Too large strip byte count ..., strip 3. Limiting to ...".
  return (has("strip") || has("tile")) && (has("offset") || has("bytecount") || has("byte count"));
}

std::unique_ptr<TiffReadHandle> TiffReadHandle::Open(const std::string& path, const char* mode, std::string* error) {
  CaptureTiffErrors();  // messages libtiff gives before it has a handle go to this thread
  std::unique_ptr<TiffReadHandle> handle(new TiffReadHandle());
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  if (!options) {
    *error = "out of memory";
    return nullptr;
  }
  TIFFOpenOptionsSetErrorHandlerExtR(options, &TiffReadHandle::OnError, handle.get());
  TIFFOpenOptionsSetWarningHandlerExtR(options, &TiffReadHandle::OnWarning, handle.get());
  handle->tif_ = TIFFOpenExt(path.c_str(), mode, options);
  TIFFOpenOptionsFree(options);  // libtiff copied what it needs into the handle
  if (!handle->tif_) {
    *error = handle->TakeProblem();
    if (error->empty()) *error = TakeTiffError();
    return nullptr;
  }
  return handle;
}

TiffReadHandle::~TiffReadHandle() {
  if (tif_) TIFFClose(tif_);
}

std::string TiffReadHandle::TakeProblem() {
  std::string problem;
  problem.swap(problem_);
  return problem;
}

// The first message is kept: later ones are usually consequences of it.
int TiffReadHandle::OnError(TIFF*, void* self, const char* module, const char* format, va_list args) {
  auto* handle = static_cast<TiffReadHandle*>(self);
  std::string message = FormatTiffMessage(module, format, args);
  if (handle->problem_.empty()) handle->problem_ = std::move(message);
  return 1;  // handled: the process-wide handler is not called
}

int TiffReadHandle::OnWarning(TIFF*, void* self, const char* module, const char* format, va_list args) {
  auto* handle = static_cast<TiffReadHandle*>(self);
  std::string message = FormatTiffMessage(module, format, args);
  if (IsTiffLayoutWarning(message) && handle->problem_.empty()) handle->problem_ = std::move(message);
  return 1;
}

}  // namespace cytonet
