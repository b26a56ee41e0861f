#include "store/directory_beneath.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace cytonet {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

Status SymlinkRefused(const std::string& path) {
  return InvalidArgumentError(path + " is a symbolic link: the store never writes or deletes through one");
}

Result<UniqueFd> OpenDirectoryBeneath(const std::string& root, std::string_view relative, bool create) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("opening " + root, errno);
  std::string walked = root;
  size_t start = 0;
  while (start < relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string_view::npos) end = relative.size();
    const std::string part(relative.substr(start, end - start));
    walked += "/" + part;
    start = end + 1;
    for (int attempt = 0;; ++attempt) {
      int next = ::openat(fd.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next >= 0) {
        fd = UniqueFd(next);
        break;
      }
      const int err = errno;
      struct stat st;
      if ((err == ELOOP || err == ENOTDIR) && ::fstatat(fd.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) return SymlinkRefused(walked);
        return IOError(walked + " exists and is not a directory");
      }
      if (err != ENOENT) return ErrnoError("opening directory " + walked, err);
      if (!create) return NotFoundError(walked + " does not exist");
      if (attempt > 0 || (::mkdirat(fd.get(), part.c_str(), 0755) != 0 && errno != EEXIST)) {
        return ErrnoError("creating directory " + walked, errno);
      }
    }
  }
  return fd;
}

}  // namespace cytonet
