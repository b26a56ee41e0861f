#include "train/weights.h"

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace cytonet::train {
namespace {

void WriteAtomically(const std::string& path, const std::vector<char>& bytes) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TORCH_CHECK(fd >= 0, "cannot create ", temporary, ": ", std::strerror(errno));
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      TORCH_CHECK(false, "writing ", temporary, ": ", std::strerror(error));
    }
    written += size_t(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_error = errno;
  ::close(fd);
  if (!synced || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = synced ? errno : sync_error;
    ::unlink(temporary.c_str());
    TORCH_CHECK(false, "writing ", path, ": ", std::strerror(error));
  }
}

// torch.save's zip container around a pickle of `value`. Unlike torch::pickle_save, the
// pickle carries no TorchScript type tags (torch.jit._pickle.restore_type_tag), which
// Python's torch.load refuses by default since torch 2.6 (weights_only=True).
std::vector<char> TorchSaveIValue(const c10::IValue& value) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* bytes, size_t n) { pickle.insert(pickle.end(), bytes, bytes + n); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
                              /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::vector<char> container;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t n) {
    container.insert(container.end(), static_cast<const char*>(bytes), static_cast<const char*>(bytes) + n);
    return n;
  });
  torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  return container;
}

}  // namespace

c10::Dict<std::string, torch::Tensor> WeightDict(const NamedModules& modules) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [prefix, module] : modules) {
    for (const auto& item : module->named_parameters(/*recurse=*/true)) {
      dict.insert(prefix + "." + item.key(), item.value().detach().cpu().contiguous());
    }
    for (const auto& item : module->named_buffers(/*recurse=*/true)) {
      dict.insert(prefix + "." + item.key(), item.value().detach().cpu().contiguous());
    }
  }
  return dict;
}

std::vector<char> TorchSaveBytes(const c10::Dict<std::string, torch::Tensor>& dict) {
  return TorchSaveIValue(c10::IValue(dict));
}

void ExportWeights(const NamedModules& modules, const std::string& path) {
  WriteAtomically(path, TorchSaveBytes(WeightDict(modules)));
}

c10::Dict<std::string, torch::Tensor> ReadWeightDict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, "cannot open ", path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path, " is not a readable weight file: ", e.what_without_backtrace());
  }
  TORCH_CHECK(value.isGenericDict(), path, " does not hold a dict of tensors");
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& entry : value.toGenericDict()) {
    TORCH_CHECK(entry.key().isString() && entry.value().isTensor(), path, " holds an entry that is not name → tensor");
    dict.insert(entry.key().toStringRef(), entry.value().toTensor());
  }
  return dict;
}

}  // namespace cytonet::train
