#include "store/status.h"

#include <cstring>

namespace cytonet {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kCorruption:
      return "Corruption";
    case StatusCode::kUnimplemented:
      return "Unimplemented";
    case StatusCode::kIOError:
      return "IOError";
    case StatusCode::kOutOfRange:
      return "OutOfRange";
    case StatusCode::kFailedPrecondition:
      return "FailedPrecondition";
    case StatusCode::kInternal:
      return "Internal";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

Status ErrnoError(const std::string& what, int errno_value) {
  char buffer[256];
  // GNU strerror_r returns the message pointer, which may not be `buffer`.
  const char* text = strerror_r(errno_value, buffer, sizeof(buffer));
  StatusCode code = errno_value == ENOENT ? StatusCode::kNotFound : StatusCode::kIOError;
  return Status(code, what + ": " + text);
}

}  // namespace cytonet
