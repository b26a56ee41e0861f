// File-system KvStore. See kvstore.h for the contract.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/directory_beneath.h"
#include "store/kvstore.h"

namespace cytonet {
namespace {

namespace fs = std::filesystem;

// An open file and, optionally, a read-only mapping of all of it. Closes and unmaps when
// the last reader (or view) lets go of it.
class FileHandle {
 public:
  FileHandle(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~FileHandle() {
    if (mapping_ != nullptr) ::munmap(mapping_, size_);
    ::close(fd_);
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // at open time; objects are written once
  const uint8_t* mapping() const { return static_cast<const uint8_t*>(mapping_); }

  void Map() {
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (p != MAP_FAILED) mapping_ = p;  // otherwise reads fall back to pread
  }

 private:
  int fd_;
  uint64_t size_;
  void* mapping_ = nullptr;
};

// Reads exactly `length` bytes at `offset`, retrying short reads and EINTR.
Status PreadFully(int fd, uint8_t* out, uint64_t length, uint64_t offset, const std::string& name) {
  while (length > 0) {
    ssize_t n = ::pread(fd, out, std::min<uint64_t>(length, 1u << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading " + name, errno);
    }
    if (n == 0) return OutOfRangeError(name + ": unexpected end of file (truncated?)");
    out += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status WriteFully(int fd, ByteSpan data, const std::string& name) {
  const uint8_t* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, std::min<size_t>(left, 1u << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("writing " + name, errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

class FileKvStore final : public KvStore {
 public:
  FileKvStore(std::string root, FileKvStoreOptions options) : root_(std::move(root)), options_(options) {}

  Result<std::optional<Bytes>> Get(std::string_view key) override {
    ASSIGN_OR_RETURN(auto handle, OpenForRead(key));
    if (!handle) return std::optional<Bytes>();
    struct stat st;
    if (::fstat(handle->fd(), &st) != 0) return ErrnoError("stat " + Describe(key), errno);
    Bytes value(static_cast<size_t>(st.st_size));
    RETURN_IF_ERROR(PreadFully(handle->fd(), value.data(), value.size(), 0, Describe(key)));
    return std::optional<Bytes>(std::move(value));
  }

  Result<std::optional<Bytes>> GetRange(std::string_view key, ByteRange range) override {
    ASSIGN_OR_RETURN(auto handle, OpenForRead(key));
    if (!handle) return std::optional<Bytes>();
    if (range.offset + range.length < range.offset) {
      return OutOfRangeError(Describe(key) + ": byte range overflows");
    }
    Bytes value(range.length);
    Status st = PreadFully(handle->fd(), value.data(), range.length, range.offset, Describe(key));
    if (!st.ok()) {
      if (st.code() == StatusCode::kOutOfRange) {
        return OutOfRangeError(Describe(key) + ": byte range [" + std::to_string(range.offset) + ", " +
                               std::to_string(range.end()) + ") passes the end of the file (truncated?)");
      }
      return st;
    }
    return std::optional<Bytes>(std::move(value));
  }

  Result<std::optional<ByteView>> GetRangeView(std::string_view key, ByteRange range) override {
    ASSIGN_OR_RETURN(auto handle, OpenForRead(key));
    if (!handle) return std::optional<ByteView>();
    if (handle->mapping() == nullptr) return KvStore::GetRangeView(key, range);
    if (range.offset > handle->size() || range.length > handle->size() - range.offset) {
      return OutOfRangeError(Describe(key) + ": byte range [" + std::to_string(range.offset) + ", " +
                             std::to_string(range.end()) + ") passes the end of the file (" +
                             std::to_string(handle->size()) + " bytes, truncated?)");
    }
    ByteSpan bytes(handle->mapping() + range.offset, range.length);
    return std::optional<ByteView>(ByteView{std::move(handle), bytes});
  }

  Result<std::optional<uint64_t>> Size(std::string_view key) override {
    ASSIGN_OR_RETURN(auto handle, OpenForRead(key));
    if (!handle) return std::optional<uint64_t>();
    return std::optional<uint64_t>(handle->size());
  }

  Status Put(std::string_view key, ByteSpan value) override {
    RETURN_IF_ERROR(ValidateKey(key));
    const std::string path = PathOf(key);
    const auto [dir_key, name] = SplitKey(key);
    ASSIGN_OR_RETURN(UniqueFd dir, OpenDirectory(dir_key, /*create=*/true));

    // The temporary name is unique per process and call, in the target's directory so the
    // rename stays on one file system; a crash leaves only a ".tmp." file behind.
    static std::atomic<uint64_t> counter{0};
    const std::string temp_name =
        name + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
    const std::string temp = PathOf(JoinKey(dir_key, temp_name));
    int fd = ::openat(dir.get(), temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return ErrnoError("creating " + temp, errno);
    Status st = WriteFully(fd, value, temp);
    if (st.ok() && options_.sync && ::fsync(fd) != 0) st = ErrnoError("fsync " + temp, errno);
    if (::close(fd) != 0 && st.ok()) st = ErrnoError("closing " + temp, errno);
    // renameat replaces a symbolic link at `name` itself, never what it points to.
    if (st.ok() && ::renameat(dir.get(), temp_name.c_str(), dir.get(), name.c_str()) != 0) {
      st = ErrnoError("renaming " + temp + " to " + path, errno);
    }
    if (!st.ok()) {
      ::unlinkat(dir.get(), temp_name.c_str(), 0);
      return st;
    }
    DropHandle(path);
    if (options_.sync && ::fsync(dir.get()) != 0 && errno != EINVAL && errno != EROFS) {
      return ErrnoError("fsync " + PathOf(dir_key), errno);
    }
    return Status::Ok();
  }

  Status Erase(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    const std::string path = PathOf(key);
    DropHandle(path);
    const auto [dir_key, name] = SplitKey(key);
    auto dir = OpenDirectory(dir_key, /*create=*/false);
    if (!dir.ok()) return dir.status().code() == StatusCode::kNotFound ? Status::Ok() : dir.status();
    if (::unlinkat(dir->get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoError("removing " + Describe(key), errno);
    }
    return Status::Ok();
  }

  // Removes the tree through descriptors opened with O_NOFOLLOW: a symbolic link inside is
  // removed as a link, and a tree reached through one is refused, so nothing outside the
  // root is ever deleted. Also takes the ".tmp." files of Puts that a killed process left.
  Status EraseTree(std::string_view prefix) override {
    RETURN_IF_ERROR(ValidateKey(prefix));
    const std::string dir = PathOf(prefix);
    DropHandlesUnder(dir + "/");
    const auto [parent_key, name] = SplitKey(prefix);
    auto parent = OpenDirectory(parent_key, /*create=*/false);
    if (!parent.ok()) return parent.status().code() == StatusCode::kNotFound ? Status::Ok() : parent.status();
    struct stat st;
    if (::fstatat(parent->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errno == ENOENT ? Status::Ok() : ErrnoError("stat " + dir, errno);
    }
    if (S_ISLNK(st.st_mode)) return SymlinkRefused(dir);
    if (!S_ISDIR(st.st_mode)) return IOError(dir + " is not a directory");
    return RemoveTreeAt(parent->get(), name, dir);
  }

  Result<std::vector<std::string>> List(std::string_view prefix) override {
    std::vector<std::string> keys;
    // List from the deepest directory named by the prefix, then filter by the full prefix.
    std::string_view dir_part = prefix.substr(0, prefix.rfind('/') == std::string_view::npos ? 0 : prefix.rfind('/'));
    if (!dir_part.empty()) RETURN_IF_ERROR(ValidateKey(dir_part));
    fs::path start = dir_part.empty() ? fs::path(root_) : fs::path(PathOf(dir_part));
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(start, ec))) return keys;
    // Symbolic links are listed but never followed into directories outside the tree.
    for (fs::recursive_directory_iterator it(start, ec), end; !ec && it != end; it.increment(ec)) {
      if (!it->is_regular_file(ec) && !it->is_symlink(ec)) continue;
      std::string rel = fs::relative(it->path(), root_, ec).generic_string();
      if (rel.find(".tmp.") != std::string::npos) continue;  // another writer's temporary
      if (rel.starts_with(prefix)) keys.push_back(std::move(rel));
    }
    if (ec) return ErrnoError("listing " + start.string(), ec.value());
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  std::string Describe(std::string_view key) const override { return PathOf(key); }

 private:
  std::string PathOf(std::string_view key) const {
    std::string path = root_;
    path.push_back('/');
    path.append(key);
    return path;
  }

  // The resolved `path` (which exists) must lie inside the root: no symlink leads out.
  Status CheckInsideRoot(const std::string& path, std::string_view key) const {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) {
      return ErrnoError("resolving " + path, errno);
    }
    std::string_view r(resolved);
    if (r != root_ && !(r.starts_with(root_) && r.size() > root_.size() && r[root_.size()] == '/')) {
      return InvalidArgumentError("key '" + std::string(key) + "' resolves to " + std::string(r) +
                                  ", outside the store root " + root_);
    }
    return Status::Ok();
  }

  // "a/b/c" → ("a/b", "c").
  static std::pair<std::string, std::string> SplitKey(std::string_view key) {
    const size_t slash = key.rfind('/');
    if (slash == std::string_view::npos) return {std::string(), std::string(key)};
    return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
  }

  // The directory `dir_key` below the root, never through a symbolic link.
  Result<UniqueFd> OpenDirectory(std::string_view dir_key, bool create) const {
    return OpenDirectoryBeneath(root_, dir_key, create);
  }

  // Removes `name` (a directory) under `parent` and everything in it, never following a link.
  static Status RemoveTreeAt(int parent, const std::string& name, const std::string& path) {
    int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? Status::Ok() : ErrnoError("opening " + path, errno);
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
      const int err = errno;
      ::close(fd);
      return ErrnoError("listing " + path, err);
    }
    std::vector<std::string> entries;
    while (const dirent* entry = ::readdir(dir)) {
      const std::string child = entry->d_name;
      if (child != "." && child != "..") entries.push_back(child);
    }
    Status status;
    for (const std::string& child : entries) {
      struct stat st;
      if (::fstatat(fd, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT && status.ok()) status = ErrnoError("stat " + path + "/" + child, errno);
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        if (status.ok()) status = RemoveTreeAt(fd, child, path + "/" + child);
      } else if (::unlinkat(fd, child.c_str(), 0) != 0 && errno != ENOENT) {
        if (status.ok()) status = ErrnoError("removing " + path + "/" + child, errno);
      }
    }
    ::closedir(dir);  // closes fd
    if (status.ok() && ::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return ErrnoError("removing " + path, errno);
    }
    return status;
  }

  // nullptr when the file does not exist.
  Result<std::shared_ptr<FileHandle>> OpenForRead(std::string_view key) {
    RETURN_IF_ERROR(ValidateKey(key));
    std::string path = PathOf(key);
    uint64_t generation;
    {
      std::lock_guard lock(mutex_);
      generation = drops_;
      auto it = handles_.find(path);
      if (it != handles_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.position);
        return it->second.handle;
      }
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::shared_ptr<FileHandle>();
      return ErrnoError("opening " + path, errno);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoError("stat " + path, err);
    }
    auto handle = std::make_shared<FileHandle>(fd, static_cast<uint64_t>(st.st_size));
    RETURN_IF_ERROR(CheckInsideRoot("/proc/self/fd/" + std::to_string(fd), key));
    if (!S_ISREG(st.st_mode)) return IOError(path + " is not a regular file");
    if (options_.map_files) handle->Map();

    std::lock_guard lock(mutex_);
    // A Put or Erase since we looked may have replaced the file after we opened it: use
    // this handle once, but do not cache it.
    if (drops_ != generation) return handle;
    auto [it, inserted] = handles_.try_emplace(path);
    if (!inserted) return it->second.handle;  // another thread opened it meanwhile
    lru_.push_front(path);
    it->second = {handle, lru_.begin()};
    while (handles_.size() > options_.max_open_files) {
      handles_.erase(lru_.back());
      lru_.pop_back();
    }
    return handle;
  }

  void DropHandle(const std::string& path) {
    std::lock_guard lock(mutex_);
    ++drops_;
    auto it = handles_.find(path);
    if (it == handles_.end()) return;
    lru_.erase(it->second.position);
    handles_.erase(it);
  }

  void DropHandlesUnder(const std::string& dir) {
    std::lock_guard lock(mutex_);
    ++drops_;
    for (auto it = handles_.begin(); it != handles_.end();) {
      if (it->first.starts_with(dir)) {
        lru_.erase(it->second.position);
        it = handles_.erase(it);
      } else {
        ++it;
      }
    }
  }

  struct CachedHandle {
    std::shared_ptr<FileHandle> handle;
    std::list<std::string>::iterator position;
  };

  const std::string root_;  // canonical, no trailing '/'
  const FileKvStoreOptions options_;
  std::mutex mutex_;
  std::list<std::string> lru_;  // most recently used first
  std::unordered_map<std::string, CachedHandle> handles_;
  uint64_t drops_ = 0;  // DropHandle calls so far
};

}  // namespace

Result<std::shared_ptr<KvStore>> OpenFileKvStore(const std::string& root, bool create, FileKvStoreOptions options) {
  std::error_code ec;
  if (create) {
    fs::create_directories(root, ec);
    if (ec) return ErrnoError("creating " + root, ec.value());
  }
  if (!fs::is_directory(root, ec)) return NotFoundError("no such directory: " + root);
  char resolved[PATH_MAX];
  if (::realpath(root.c_str(), resolved) == nullptr) return ErrnoError("resolving " + root, errno);
  return std::shared_ptr<KvStore>(std::make_shared<FileKvStore>(resolved, options));
}

}  // namespace cytonet
