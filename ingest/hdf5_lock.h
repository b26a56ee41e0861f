// The Debian HDF5 library is not built thread-safe: every call into it, reading or
// writing, holds this one process-wide lock. Recursive, because a failed open destroys
// its half-built reader (which closes handles) while still holding it.
#pragma once

#include <mutex>

namespace cytonet {

std::recursive_mutex& Hdf5Lock();

}  // namespace cytonet
