#include "dataset/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace cytonet {
namespace {

constexpr const char* kLockFolder = ".cytonet-locks";

// Opens (creating) the folder `part` under `parent` without following a symbolic link.
Result<int> OpenFolderAt(int parent, const std::string& part, const std::string& path) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::openat(parent, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno == ELOOP || errno == ENOTDIR) {
      return InvalidArgumentError(path + " is a symbolic link or not a folder: refusing to lock through it");
    }
    if (errno != ENOENT) return ErrnoError("opening " + path, errno);
    if (::mkdirat(parent, part.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError("creating " + path, errno);
  }
  return IOError("cannot open " + path);
}

std::string ReadHolder(int fd) {
  char text[512];
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  if (n <= 0) return "another process";
  std::string holder(text, size_t(n));
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
  return holder;
}

}  // namespace

Result<DatasetLock> DatasetLock::Acquire(const std::string& root, const std::string& name, const std::string& purpose) {
  int dir = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return ErrnoError("opening dataset " + root, errno);
  // Folders of the lock's name, then the lock file itself; each step refuses links.
  std::string path = root + "/" + kLockFolder;
  std::string rest = std::string(kLockFolder) + "/" + name;
  size_t start = 0;
  Status status;
  while (true) {
    const size_t slash = rest.find('/', start);
    if (slash == std::string::npos) break;
    const std::string part = rest.substr(start, slash - start);
    path = root + "/" + rest.substr(0, slash);
    auto next = OpenFolderAt(dir, part, path);
    ::close(dir);
    if (!next.ok()) return next.status();
    dir = *next;
    start = slash + 1;
  }
  const std::string file = rest.substr(start) + ".lock";
  path = root + "/" + rest + ".lock";
  const int fd = ::openat(dir, file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  const int open_errno = errno;
  ::close(dir);
  if (fd < 0) return ErrnoError("opening lock " + path, open_errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? ReadHolder(fd) : std::string();
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return FailedPreconditionError(root + " (" + name + ") is in use by " + holder +
                                     ": wait for it to finish; a killed holder releases it at once");
    }
    return ErrnoError("locking " + path, err);
  }
  char host[256] = "?";
  ::gethostname(host, sizeof(host) - 1);
  const std::string holder = "pid " + std::to_string(::getpid()) + " on " + host + " (" + purpose + ")\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, holder.data(), holder.size(), 0) != ssize_t(holder.size())) {
    // The lock holds without the note; only the refusal message of others gets vaguer.
  }
  return DatasetLock(fd);
}

DatasetLock::DatasetLock(DatasetLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

DatasetLock& DatasetLock::operator=(DatasetLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DatasetLock::~DatasetLock() {
  if (fd_ < 0) return;
  // Empty again, so a finished job leaves the same bytes whoever ran it (a failure here
  // only leaves a stale note, which the next holder overwrites).
  [[maybe_unused]] const int truncated = ::ftruncate(fd_, 0);
  ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace cytonet
