#include "train/config.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace cytonet::train {
namespace {

// One table of every key: how to read it into the config and how to write it back. Ranges
// are checked as each value is read, so the message names the key.
struct Field {
  std::function<Status(const Json&, TrainConfig&, const std::string& where)> read;
  std::function<Json(const TrainConfig&)> write;
  Json schema;  // the key's JSON Schema (type, range or choices)
};

template <typename T>
Field Number(T TrainConfig::*member, double min, double max) {
  return {[member, min, max](const Json& v, TrainConfig& c, const std::string& where) -> Status {
            const bool integral = std::is_integral_v<T>;
            if (!v.is_number() || (integral && !v.is_number_integer())) {
              return InvalidArgumentError(where + " must be " + (integral ? "an integer" : "a number"));
            }
            const double x = v.get<double>();
            if (!(x >= min && x <= max)) {
              std::ostringstream range;
              range << where << " must be in [" << min << ", " << max << "], got " << v.dump();
              return InvalidArgumentError(range.str());
            }
            c.*member = integral ? T(v.get<int64_t>()) : T(x);
            return Status::Ok();
          },
          [member](const TrainConfig& c) { return Json(c.*member); },
          std::is_integral_v<T> ? Json{{"type", "integer"}, {"minimum", int64_t(min)}, {"maximum", int64_t(max)}}
                                : Json{{"type", "number"}, {"minimum", min}, {"maximum", max}}};
}

Field Text(std::string TrainConfig::*member, std::vector<std::string> choices = {}) {
  return {[member, choices](const Json& v, TrainConfig& c, const std::string& where) -> Status {
            if (!v.is_string() || v.get<std::string>().empty())
              return InvalidArgumentError(where + " must be a non-empty string");
            const std::string s = v.get<std::string>();
            if (!choices.empty() && std::find(choices.begin(), choices.end(), s) == choices.end()) {
              std::string list;
              for (const auto& choice : choices) list += (list.empty() ? "" : ", ") + choice;
              return InvalidArgumentError(where + " must be one of " + list + ", got \"" + s + "\"");
            }
            c.*member = s;
            return Status::Ok();
          },
          [member](const TrainConfig& c) { return Json(c.*member); },
          choices.empty() ? Json{{"type", "string"}, {"minLength", 1}} : Json{{"type", "string"}, {"enum", choices}}};
}

Field Flag(bool TrainConfig::*member) {
  return {[member](const Json& v, TrainConfig& c, const std::string& where) -> Status {
            if (!v.is_boolean()) return InvalidArgumentError(where + " must be true or false");
            c.*member = v.get<bool>();
            return Status::Ok();
          },
          [member](const TrainConfig& c) { return Json(c.*member); }, Json{{"type", "boolean"}}};
}

Field TextList(std::vector<std::string> TrainConfig::*member) {
  return {[member](const Json& v, TrainConfig& c, const std::string& where) -> Status {
            if (!v.is_array()) return InvalidArgumentError(where + " must be a list of strings");
            std::vector<std::string> list;
            for (const Json& item : v) {
              if (!item.is_string() || item.get<std::string>().empty())
                return InvalidArgumentError(where + " must hold non-empty strings, got " + item.dump());
              list.push_back(item.get<std::string>());
            }
            c.*member = std::move(list);
            return Status::Ok();
          },
          [member](const TrainConfig& c) { return Json(c.*member); },
          Json{{"type", "array"}, {"items", {{"type", "string"}, {"minLength", 1}}}}};
}

const std::map<std::string, Field>& Fields() {
  static const auto* fields = new std::map<std::string, Field>{
      {"dataset", Text(&TrainConfig::dataset)},
      {"run_dir", Text(&TrainConfig::run_dir)},
      {"level", Number(&TrainConfig::level, 0, 16)},
      {"patch_size", Number(&TrainConfig::patch_size, 32, 8192)},
      {"augment", Flag(&TrainConfig::augment)},
      {"augment_on_device", Flag(&TrainConfig::augment_on_device)},
      {"channels_last", Flag(&TrainConfig::channels_last)},
      {"precision", Text(&TrainConfig::precision, {"fp32", "bf16", "fp16"})},
      {"gradient_checkpointing", Flag(&TrainConfig::gradient_checkpointing)},
      {"brains", TextList(&TrainConfig::brains)},
      {"sections", TextList(&TrainConfig::sections)},
      {"loader_threads", Number(&TrainConfig::loader_threads, 1, 1024)},
      {"ring_depth", Number(&TrainConfig::ring_depth, 2, 1024)},
      {"model", Text(&TrainConfig::model, {"resnet50", "small", "r50_vit", "small_vit"})},
      {"loss", Text(&TrainConfig::loss, {"spatial_nce", "supcon", "nt_xent"})},
      {"views", Number(&TrainConfig::views, 1, 64)},
      {"temperature", Number(&TrainConfig::temperature, 1e-4, 100)},
      {"sigma_mm", Number(&TrainConfig::sigma_mm, 1e-3, 1e4)},
      {"projection_dim", Number(&TrainConfig::projection_dim, 1, 65536)},
      {"batch_size", Number(&TrainConfig::batch_size, 2, 1 << 20)},
      {"steps", Number(&TrainConfig::steps, 1, 999999999)},
      {"base_lr", Number(&TrainConfig::base_lr, 1e-9, 100)},
      {"schedule", Text(&TrainConfig::schedule, {"constant", "cosine"})},
      {"warmup_steps", Number(&TrainConfig::warmup_steps, 0, 999999999)},
      {"momentum", Number(&TrainConfig::momentum, 0, 0.999999)},
      {"weight_decay", Number(&TrainConfig::weight_decay, 0, 1)},
      {"trust_coefficient", Number(&TrainConfig::trust_coefficient, 1e-9, 100)},
      {"lars_clip", Flag(&TrainConfig::lars_clip)},
      {"adapt_bias_and_norm", Flag(&TrainConfig::adapt_bias_and_norm)},
      {"seed", Number(&TrainConfig::seed, 0, 9007199254740991.0)},
      {"torch_threads", Number(&TrainConfig::torch_threads, 0, 1024)},
      {"device", Text(&TrainConfig::device, {"cpu", "cuda"})},
      {"checkpoint_every", Number(&TrainConfig::checkpoint_every, 1, 999999999)},
      {"keep_last", Number(&TrainConfig::keep_last, 1, 1000)},
      {"log_every", Number(&TrainConfig::log_every, 1, 999999999)},
      {"collective_timeout_s", Number(&TrainConfig::collective_timeout_s, 1, 86400)},
  };
  return *fields;
}

// YAML → JSON. Plain scalars resolve as in YAML 1.2's core schema (null, true/false,
// integers, floats); quoted scalars stay strings. A key given twice is an error.
Result<Json> YamlToJson(const YAML::Node& node, const std::string& where) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Sequence: {
      Json list = Json::array();
      for (size_t i = 0; i < node.size(); ++i) {
        ASSIGN_OR_RETURN(Json item, YamlToJson(node[i], where + "[" + std::to_string(i) + "]"));
        list.push_back(std::move(item));
      }
      return list;
    }
    case YAML::NodeType::Map: {
      Json object = Json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) return InvalidArgumentError(where + ": a key must be a plain name");
        const std::string key = entry.first.Scalar();
        if (object.contains(key)) return InvalidArgumentError(where + ": key \"" + key + "\" is given twice");
        ASSIGN_OR_RETURN(object[key], YamlToJson(entry.second, where + ": " + key));
      }
      return object;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string text = node.Scalar();
  // Quoted ("!") or tagged !!str: a string. Another explicit tag is not for a configuration.
  if (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str") return Json(text);
  if (node.Tag() != "?") return InvalidArgumentError(where + ": the tag " + node.Tag() + " is not supported");
  static const std::regex kNull("null|Null|NULL|~|"), kTrue("true|True|TRUE"), kFalse("false|False|FALSE");
  static const std::regex kInteger("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (std::regex_match(text, kNull)) return Json(nullptr);
  if (std::regex_match(text, kTrue)) return Json(true);
  if (std::regex_match(text, kFalse)) return Json(false);
  try {
    if (std::regex_match(text, kInteger)) return Json(std::stoll(text));
    if (std::regex_match(text, kFloat)) return Json(std::stod(text));
  } catch (const std::out_of_range&) {
    return InvalidArgumentError(where + ": " + text + " is out of range");
  }
  return Json(text);
}

bool EndsWithIgnoringCase(const std::string& s, const std::string& tail) {
  if (s.size() < tail.size()) return false;
  return std::equal(tail.begin(), tail.end(), s.end() - std::ptrdiff_t(tail.size()),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

}  // namespace

Result<Json> ParseYamlConfig(const std::string& text, const std::string& where) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(where + ":" + std::to_string(e.mark.line + 1) + ":" +
                                std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
  if (documents.size() > 1) {
    return InvalidArgumentError(where + ": holds " + std::to_string(documents.size()) +
                                " YAML documents; a configuration is one");
  }
  return documents.empty() ? Json(nullptr) : YamlToJson(documents[0], where);
}

Result<TrainConfig> ParseTrainConfig(const Json& json, const std::string& where) {
  if (!json.is_object()) {
    return InvalidArgumentError(where + ": the configuration must be a JSON object (a YAML mapping) of keys");
  }
  TrainConfig config;
  for (const auto& [key, value] : json.items()) {
    const auto field = Fields().find(key);
    if (field == Fields().end()) return InvalidArgumentError(where + ": unknown key \"" + key + "\"");
    RETURN_IF_ERROR(field->second.read(value, config, where + ": " + key));
  }
  for (const char* required : {"dataset", "run_dir"}) {
    if (!json.contains(required)) return InvalidArgumentError(where + ": " + required + " is required");
  }
  if ((config.model == "r50_vit" || config.model == "small_vit") && config.patch_size % 64 != 0) {
    return InvalidArgumentError(where + ": patch_size must be a multiple of 64 for " + config.model + ", got " +
                                std::to_string(config.patch_size));
  }
  if (config.loss == "nt_xent" && !config.augment) {
    return InvalidArgumentError(where + ": loss \"nt_xent\" needs augment (its two views would be the same patch)");
  }
  if (config.loss == "nt_xent" && config.views != 2) {
    return InvalidArgumentError(where +
                                ": views must be 2 for loss \"nt_xent\" (it pairs two views of each point), got " +
                                std::to_string(config.views));
  }
  if (config.warmup_steps >= config.steps && config.warmup_steps > 0) {
    return InvalidArgumentError(where + ": warmup_steps (" + std::to_string(config.warmup_steps) +
                                ") must be fewer than steps (" + std::to_string(config.steps) + ")");
  }
  return config;
}

Result<TrainConfig> ReadTrainConfig(const std::string& path) {
  // A folder given as the file is an error here, not an exception from a stream.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return NotFoundError("cannot open the training configuration " + path);
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError("the training configuration " + path + " is not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open the training configuration " + path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Json json;
  if (EndsWithIgnoringCase(path, ".yaml") || EndsWithIgnoringCase(path, ".yml")) {
    ASSIGN_OR_RETURN(json, ParseYamlConfig(text, path));
  } else {
    ASSIGN_OR_RETURN(json, ParseJson(ByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size()), path));
  }
  return ParseTrainConfig(json, path);
}

Json TrainConfigSchema() {
  Json properties = Json::object();
  const TrainConfig defaults;
  for (const auto& [key, field] : Fields()) {
    properties[key] = field.schema;
    if (key != "dataset" && key != "run_dir") properties[key]["default"] = field.write(defaults);
  }
  return {
      {"$schema", "https://json-schema.org/draft/2020-12/schema"},
      {"$id", "https://cytonet.invalid/schemas/train.schema.json"},
      {"title", "cytonet train configuration (generated by `cytonet train --print-schema`)"},
      {"type", "object"},
      {"required", {"dataset", "run_dir"}},
      {"additionalProperties", false},
      {"properties", properties},
      // NT-Xent pairs two views of each point.
      {"if", {{"properties", {{"loss", {{"const", "nt_xent"}}}}}, {"required", {"loss"}}}},
      {"then", {{"properties", {{"views", {{"const", 2}}}, {"augment", {{"const", true}}}}}, {"required", {"views"}}}}};
}

Json TrainConfigToJson(const TrainConfig& config) {
  Json json = Json::object();
  for (const auto& [key, field] : Fields()) json[key] = field.write(config);
  return json;
}

}  // namespace cytonet::train
