// KvStore: the only way the store touches storage.
//
// Keys are '/'-separated relative paths ("sections/b01/s0001/0/c/0/0"). Every
// implementation rejects keys that could escape the store's root ("..", ".", empty
// components, absolute paths, NUL) with InvalidArgument. "Key absent" is not an error: Get
// returns std::nullopt. All methods are safe to call from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/bytes.h"
#include "store/status.h"

namespace cytonet {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }
};

// Read-only stored bytes together with whatever keeps them alive (an owned buffer, or a
// mapped file). Valid as long as the view is held, even if the key is replaced meanwhile.
struct ByteView {
  std::shared_ptr<const void> owner;
  ByteSpan bytes;
};

class KvStore {
 public:
  virtual ~KvStore() = default;

  // The whole value, or nullopt if the key is absent.
  virtual Result<std::optional<Bytes>> Get(std::string_view key) = 0;

  // Bytes [offset, offset+length) of the value, or nullopt if absent. A range that passes
  // the end of the value is OutOfRange (a truncated object, never a short read).
  virtual Result<std::optional<Bytes>> GetRange(std::string_view key, ByteRange range) = 0;

  // Like GetRange, but may avoid copying (the file store serves mapped pages). The default
  // wraps GetRange.
  virtual Result<std::optional<ByteView>> GetRangeView(std::string_view key, ByteRange range);

  // Size of the value in bytes, or nullopt if absent.
  virtual Result<std::optional<uint64_t>> Size(std::string_view key) = 0;

  // Stores the value atomically: a concurrent or later reader sees the old value or the
  // new one, never a part; after OK returns the value survives a crash (it is durable).
  virtual Status Put(std::string_view key, ByteSpan value) = 0;

  // Removes the key; removing an absent key is OK.
  virtual Status Erase(std::string_view key) = 0;

  // Removes every key below the folder-like `prefix` (keys starting with prefix + "/"), and
  // whatever interrupted writes left there. The default lists and erases each key.
  virtual Status EraseTree(std::string_view prefix);

  // Every key that starts with `prefix` (a directory-like prefix ending in '/' or empty),
  // sorted.
  virtual Result<std::vector<std::string>> List(std::string_view prefix) = 0;

  // A human-readable name for the key ("file:///data/ds/zarr.json"), for error messages.
  virtual std::string Describe(std::string_view key) const = 0;
};

// InvalidArgument unless `key` is a safe relative key (see the file comment).
Status ValidateKey(std::string_view key);

// Joins key prefixes: JoinKey("a/b", "zarr.json") == "a/b/zarr.json"; empty parts vanish.
std::string JoinKey(std::string_view prefix, std::string_view key);

// A store that keeps values in memory: for tests and for staging small objects.
std::shared_ptr<KvStore> NewMemoryKvStore();

struct FileKvStoreOptions {
  // Open file descriptors kept for reuse by reads (shards are read many times).
  size_t max_open_files = 512;
  // fsync values and their directories on Put. Off only for scratch data in tests.
  bool sync = true;
  // Serve GetRangeView from read-only mappings of the files (no copy out of the page
  // cache). Safe for objects written through Put (replaced by rename, never truncated in
  // place); a file truncated in place by another program while mapped would raise SIGBUS.
  bool map_files = true;
};

// A store rooted at a directory of the local (or parallel) file system. Reads use pread on
// cached descriptors; Put writes a temporary file in the same directory, fsyncs it, renames
// it into place and fsyncs the directory. A Put through this store drops the cached
// descriptor of that key; a file replaced by another process is seen only after the
// descriptor falls out of the cache (the dataset writes every object once).
// Fails with NotFound if `root` does not exist and `create` is false.
Result<std::shared_ptr<KvStore>> OpenFileKvStore(const std::string& root, bool create, FileKvStoreOptions options = {});

}  // namespace cytonet
