// Model weights for Python: every parameter and buffer as one dict of tensors in torch.save's
// format, so that `torch.load(path)` in Python reads it, with its default weights_only=True
// (torch::save's archives it cannot read; torch::pickle_save's it reads only with
// weights_only=False). Keys are "<prefix>.<name as in named_parameters/named_buffers>".
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "store/bytes.h"

namespace cytonet::train {

using NamedModules = std::vector<std::pair<std::string, const torch::nn::Module*>>;

// The dict, on the CPU. Names each module's entries "<prefix>.<name>".
c10::Dict<std::string, torch::Tensor> WeightDict(const NamedModules& modules);

// Written through the store's FileKvStore of the path's folder (temporary file, fsync,
// rename), so a reader never sees half a file. Throws c10::Error naming the path on failure.
void ExportWeights(const NamedModules& modules, const std::string& path);

// Reads a file ExportWeights wrote (or Python's torch.save of a dict of tensors).
// Throws c10::Error naming the path when it is not one.
c10::Dict<std::string, torch::Tensor> ReadWeightDict(const std::string& path);
// The same from the file's bytes; throws c10::Error when they are not such a dict.
c10::Dict<std::string, torch::Tensor> ParseWeightDict(const Bytes& bytes);

// The bytes of torch.save(dict) for a dict of tensors (also for the tests' oracle files).
std::vector<char> TorchSaveBytes(const c10::Dict<std::string, torch::Tensor>& dict);

}  // namespace cytonet::train
