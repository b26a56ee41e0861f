#include "dataset/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace cytonet {
namespace {

constexpr const char* kLockFolder = ".cytonet-locks";

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
  // The lock's folders and file are reached without following links (store/directory_beneath.h).
  const std::string relative = std::string(kLockFolder) + "/" + name + ".lock";
  const size_t slash = relative.rfind('/');
  ASSIGN_OR_RETURN(UniqueFd dir, OpenDirectoryBeneath(root, relative.substr(0, slash), /*create=*/true));
  const std::string path = root + "/" + relative;
  const int fd =
      ::openat(dir.get(), relative.substr(slash + 1).c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("opening lock " + path, errno);
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
  // Best effort: without the note the lock still holds; only others' refusals get vaguer.
  [[maybe_unused]] const bool noted =
      ::ftruncate(fd, 0) == 0 && ::pwrite(fd, holder.data(), holder.size(), 0) == ssize_t(holder.size());
  return DatasetLock(UniqueFd(fd));
}

DatasetLock::~DatasetLock() {
  // Empty again, so a finished job leaves the same bytes whoever ran it (a failure here
  // only leaves a stale note, which the next holder overwrites). Closing the descriptor
  // (UniqueFd) then releases the flock.
  if (fd_.get() < 0) return;  // moved from
  [[maybe_unused]] const int truncated = ::ftruncate(fd_.get(), 0);
}

}  // namespace cytonet
