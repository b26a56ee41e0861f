// File helpers for train/ (POSIX, not std::filesystem: libtorch.so exports its own copies of
// some std::filesystem symbols, and calls bound to them crash). Errors throw c10::Error
// naming the path, as everything at the LibTorch edge does.
#pragma once

#include <string>
#include <vector>

namespace cytonet::train {

// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path` and
// fsyncs the folder: a reader sees the old file or the new one, never a part.
void WriteFileAtomically(const std::string& path, const std::vector<char>& bytes);

std::vector<char> ReadWholeFile(const std::string& path);

// Names in `folder` (not "." and ".."), sorted.
std::vector<std::string> ListFolder(const std::string& folder);

// Creates `folder` and its parents (like mkdir -p).
void MakeFolders(const std::string& folder);

}  // namespace cytonet::train
