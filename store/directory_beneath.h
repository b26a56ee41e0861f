// Directories opened beneath a root without following symbolic links: the file store's
// writes and the dataset's lock files both go through them, so nothing they create or
// delete can land outside the root.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "store/status.h"

namespace cytonet {

// Owns a file descriptor.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The error for a symbolic link met on the way (InvalidArgument naming `path`).
Status SymlinkRefused(const std::string& path);

// Opens the directory `relative` ('/'-separated, "" = the root itself) below `root`
// component by component with O_NOFOLLOW, creating missing ones when `create`. A symbolic
// link on the way is refused (SymlinkRefused); NotFound when a component is absent and not
// created.
Result<UniqueFd> OpenDirectoryBeneath(const std::string& root, std::string_view relative, bool create);

}  // namespace cytonet
