#include "train/weights.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include "store/kvstore.h"

namespace cytonet::train {
namespace {

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

namespace {

// The store of a path's folder and the file's name in it.
std::pair<std::shared_ptr<KvStore>, std::string> FolderAndName(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  auto store = OpenFileKvStore(folder, /*create=*/false);
  TORCH_CHECK(store.ok(), path, ": ", store.status().ToString());
  return {*store, path.substr(slash + 1)};
}

}  // namespace

void ExportWeights(const NamedModules& modules, const std::string& path) {
  const auto [folder, name] = FolderAndName(path);
  const std::vector<char> bytes = TorchSaveBytes(WeightDict(modules));
  const Status put = folder->Put(name, ByteSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  TORCH_CHECK(put.ok(), "writing ", path, ": ", put.ToString());
}

c10::Dict<std::string, torch::Tensor> ParseWeightDict(const Bytes& bytes) {
  c10::IValue value;
  try {
    value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "not a readable weight file: ", e.what_without_backtrace());
  }
  TORCH_CHECK(value.isGenericDict(), "not a dict of tensors");
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& entry : value.toGenericDict()) {
    TORCH_CHECK(entry.key().isString() && entry.value().isTensor(), "an entry that is not name → tensor");
    dict.insert(entry.key().toStringRef(), entry.value().toTensor());
  }
  return dict;
}

c10::Dict<std::string, torch::Tensor> ReadWeightDict(const std::string& path) {
  const auto [folder, name] = FolderAndName(path);
  auto bytes = folder->Get(name);
  TORCH_CHECK(bytes.ok(), bytes.status().ToString());
  TORCH_CHECK(bytes->has_value(), "no such file: ", path);
  try {
    return ParseWeightDict(**bytes);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path, ": ", e.what_without_backtrace());
  }
}

}  // namespace cytonet::train
