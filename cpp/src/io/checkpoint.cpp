// Model checkpoints (cpuformer/io/checkpoint.hpp): the registry of model
// classes, loading a file into a model (float32 or packed low precision) and
// saving one; configs to and from JSON are in checkpoint_config.cpp.
#include "cpuformer/io/checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/allocator.hpp"
#include "cpuformer/runtime/build_info.hpp"

namespace cpuformer {

namespace {

// ============================================================================
// The registry: one entry per model class
// ============================================================================

struct ModelClass {
  std::string name;
  std::function<std::unique_ptr<Module>(const Json& config)> create;
  std::function<bool(const Module&)> is_instance;
  std::function<Json(const Module&)> config_json;
};

// M must have `explicit M(const C&)` and `const C& config() const`.
template <class M, class C>
ModelClass model_class(const char* name, C (*from_json)(const Json&), Json (*to_json)(const C&)) {
  return {name, [from_json](const Json& j) -> std::unique_ptr<Module> { return std::make_unique<M>(from_json(j)); },
          [](const Module& m) { return dynamic_cast<const M*>(&m) != nullptr; },
          [to_json](const Module& m) { return to_json(static_cast<const M&>(m).config()); }};
}

const std::vector<ModelClass>& registry() {
  static const std::vector<ModelClass> classes = {
      model_class<GPT, GPTConfig>("GPT", gpt_config_from_json, gpt_config_to_json),
      model_class<Seq2Seq, Seq2SeqConfig>("Seq2Seq", seq2seq_config_from_json, seq2seq_config_to_json),
      model_class<BERT, BERTConfig>("BERT", bert_config_from_json, bert_config_to_json),
      model_class<ViT, ViTConfig>("ViT", vit_config_from_json, vit_config_to_json),
  };
  return classes;
}

const ModelClass& class_of(const Module& model) {
  for (const auto& c : registry())
    if (c.is_instance(model)) return c;
  std::string known;
  for (const auto& c : registry()) known += (known.empty() ? "" : ", ") + c.name;
  throw TypeError(str_cat("expected a cpuformer model (", known, "), got another Module"));
}

// ============================================================================
// Loading
// ============================================================================

std::string where(const std::string& path) { return "checkpoint " + quote_for_message(path); }

const std::string* find_meta(const Metadata& meta, std::string_view key) {
  for (const auto& kv : meta)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

std::string join_names(const std::vector<std::string>& names) {
  constexpr size_t kMaxShown = 8;
  std::string s = "[";
  for (size_t i = 0; i < names.size() && i < kMaxShown; ++i) s += (i ? ", " : "") + quote_for_message(names[i], 80);
  if (names.size() > kMaxShown) s += str_cat(", ... (", names.size(), " in all)");
  return s + "]";
}

// Copies the file's tensors into the model's parameters: every parameter
// must be present with its exact shape and nothing else may be (optimizer
// buffers "optim.*" of training-state files excepted). All checked before
// anything is copied.
void assign_parameters(const std::string& path, const std::string& class_name, Module& model,
                       std::vector<NamedTensor>& tensors) {
  std::unordered_map<std::string, Parameter*> params;
  const auto named = model.named_parameters();
  for (const auto& p : named) params.emplace(p.first, p.second);
  std::unordered_map<std::string, Tensor*> given;
  std::vector<std::string> unexpected, missing;
  for (auto& t : tensors) {
    std::string_view name = t.name;
    if (name.substr(0, 6) == "optim.") continue;
    if (name.substr(0, 6) == "model.") name.remove_prefix(6);
    const std::string key(name);
    CF_CHECK_VALUE(given.emplace(key, &t.value).second, where(path), ": parameter ", quote_for_message(key),
                   " is stored twice");
    if (!params.count(key)) unexpected.push_back(key);
  }
  for (const auto& p : named)
    if (!given.count(p.first)) missing.push_back(p.first);
  CF_CHECK_VALUE(missing.empty() && unexpected.empty(), where(path), ": tensors do not match its ", class_name,
                 " config: missing ", join_names(missing), ", unexpected ", join_names(unexpected));
  for (const auto& p : named) {
    const Tensor& src = *given.at(p.first);
    CF_CHECK_VALUE(src.shape() == p.second->value.shape(), where(path), ": ", p.first, ": expected shape ",
                   shape_str(p.second->value.shape()), " for its ", class_name, " config, got ",
                   shape_str(src.shape()));
  }
  const CacheBypass bypass;  // the file's tensors are not needed again
  for (const auto& p : named) {
    Tensor& src = *given.at(p.first);
    std::copy(src.data(), src.data() + src.numel(), p.second->value.data());
    src = Tensor();  // the file's copy goes as soon as it is used: the peak stays near one model
  }
  model.mark_weights_changed();
}

// A raw (I8 / BF16) tensor of a float32 checkpoint, converted to float32 as
// the reader does for every other dtype.
void to_float(NamedTensor& t) {
  if (!t.is_raw()) return;
  Tensor v = Tensor::empty(t.raw_shape);
  const uint8_t* src = t.raw->data();
  if (t.raw_dtype == "I8") {
    for (int64_t i = 0; i < v.numel(); ++i) v.data()[i] = static_cast<float>(static_cast<int8_t>(src[i]));
  } else {
    for (int64_t i = 0; i < v.numel(); ++i) {
      uint16_t b;
      std::memcpy(&b, src + 2 * i, 2);
      v.data()[i] = bf16_to_float(b);
    }
  }
  t.value = v;
  t.raw = nullptr;
  t.raw_dtype.clear();
}

// A low-precision checkpoint: every weight matrix stored as I8 (with a
// "<name>.scale" F32 [rows] tensor) or BF16, the other parameters as float.
// Packs them into the model and commits it to `dtype`. All checked before the
// model changes.
void assign_quantized(const std::string& path, const std::string& class_name, Module& model,
                      std::vector<NamedTensor>& tensors, DType dtype) {
  const char* want = dtype == DType::Int8 ? "I8" : "BF16";
  std::unordered_map<std::string, NamedTensor*> given;
  for (auto& t : tensors) {
    std::string_view name = t.name;
    if (name.substr(0, 6) == "optim.") continue;
    if (name.substr(0, 6) == "model.") name.remove_prefix(6);
    const std::string key(name);
    CF_CHECK_VALUE(given.emplace(key, &t).second, where(path), ": tensor ", quote_for_message(key), " is stored twice");
  }
  std::vector<std::string> missing, unexpected;
  const auto named = model.named_parameters();
  // The precision of the stored matrices first: a file whose metadata names
  // another dtype than its data fails with that, not with a list of names.
  for (const auto& p : named) {
    auto it = given.find(p.first);
    if (!p.second->matrix || it == given.end()) continue;
    const NamedTensor& t = *it->second;
    CF_CHECK_VALUE(t.is_raw() && t.raw_dtype == want, where(path), ": ", p.first, ": a ", dtype_name(dtype),
                   " checkpoint stores weight matrices as ", want, ", got ",
                   t.is_raw() ? t.raw_dtype : std::string("a float tensor"));
  }
  std::unordered_map<std::string, bool> expected;
  for (const auto& p : named) {
    expected[p.first] = true;
    if (p.second->matrix && dtype == DType::Int8) expected[p.first + ".scale"] = true;
  }
  for (const auto& g : given)
    if (!expected.count(g.first)) unexpected.push_back(g.first);
  for (const auto& e : expected)
    if (!given.count(e.first)) missing.push_back(e.first);
  std::sort(missing.begin(), missing.end());
  std::sort(unexpected.begin(), unexpected.end());
  CF_CHECK_VALUE(missing.empty() && unexpected.empty(), where(path), ": tensors do not match its ", dtype_name(dtype),
                 " ", class_name, " config: missing ", join_names(missing), ", unexpected ", join_names(unexpected));
  const CacheBypass bypass;  // the file's tensors are not needed again
  std::vector<std::shared_ptr<PackedWeight>> packed(named.size());
  for (size_t i = 0; i < named.size(); ++i) {
    const std::string& name = named[i].first;
    Parameter& prm = *named[i].second;
    NamedTensor& t = *given.at(name);
    const Shape shape = prm.shape();
    if (!prm.matrix) {
      CF_CHECK_VALUE(!t.is_raw(), where(path), ": ", name, ": expected float32 data (only weight matrices are ",
                     dtype_name(dtype), "), got ", t.raw_dtype);
      CF_CHECK_VALUE(t.value.shape() == shape, where(path), ": ", name, ": expected shape ", shape_str(shape),
                     " for its ", class_name, " config, got ", shape_str(t.value.shape()));
      continue;
    }
    CF_CHECK_VALUE(t.is_raw() && t.raw_dtype == want, where(path), ": ", name, ": a ", dtype_name(dtype),
                   " checkpoint stores weight matrices as ", want, ", got ",
                   t.is_raw() ? t.raw_dtype : std::string("a float tensor"));
    CF_CHECK_VALUE(t.raw_shape == shape, where(path), ": ", name, ": expected shape ", shape_str(shape), " for its ",
                   class_name, " config, got ", shape_str(t.raw_shape));
    const std::string what = str_cat(where(path), ": ", name);
    if (dtype == DType::Int8) {
      NamedTensor& sc = *given.at(name + ".scale");
      CF_CHECK_VALUE(!sc.is_raw() && sc.value.shape() == Shape({shape[0]}), where(path), ": ", name,
                     ".scale: expected float32 scales of shape [", shape[0], "], got ",
                     sc.is_raw() ? sc.raw_dtype + " " + shape_str(sc.raw_shape) : shape_str(sc.value.shape()));
      packed[i] = std::make_shared<PackedWeight>(pack_int8(reinterpret_cast<const int8_t*>(t.raw->data()),
                                                           sc.value.data(), shape[0], shape[1], what.c_str()));
    } else {
      std::vector<uint16_t> bits(static_cast<size_t>(shape[0] * shape[1]));
      std::memcpy(bits.data(), t.raw->data(), bits.size() * 2);
      packed[i] = std::make_shared<PackedWeight>(pack_bf16(bits.data(), shape[0], shape[1]));
    }
    t.raw = nullptr;  // the packed copy is the one kept
  }
  for (size_t i = 0; i < named.size(); ++i) {
    Parameter& prm = *named[i].second;
    if (prm.matrix) {
      prm.packed = packed[i];
    } else {
      const Tensor& src = given.at(named[i].first)->value;
      std::copy(src.data(), src.data() + src.numel(), prm.value.data());
    }
  }
  model.commit_packed(dtype);
}

template <class M>
std::unique_ptr<M> load_as(const std::string& path, const char* class_name) {
  LoadedModel loaded = load_model(path);
  CF_CHECK_VALUE(loaded.as<M>() != nullptr, where(path), ": expected a ", class_name, " checkpoint, got class '",
                 loaded.class_name, "'");
  return std::unique_ptr<M>(static_cast<M*>(loaded.module.release()));
}

}  // namespace

std::vector<std::string> model_class_names() {
  std::vector<std::string> names;
  for (const auto& c : registry()) names.push_back(c.name);
  return names;
}

std::string model_class_name(const Module& model) { return class_of(model).name; }
Json model_config_json(const Module& model) { return class_of(model).config_json(model); }

LoadedModel load_model(const std::string& path) {
  SafetensorsContent content = load_safetensors(path, /*keep_low_precision=*/true);
  const Metadata& meta = content.metadata;
  const std::string* format = find_meta(meta, "format");
  CF_CHECK_VALUE(format && *format == kCheckpointFormat, where(path),
                 ": not a cpuformer checkpoint (its metadata has no format=\"cpuformer\")");
  const std::string* version = find_meta(meta, "format_version");
  CF_CHECK_VALUE(version && *version == kCheckpointFormatVersion, where(path),
                 ": unsupported checkpoint format_version ", version ? quote_for_message(*version) : "(missing)",
                 " (this library reads \"", kCheckpointFormatVersion, "\")");
  const std::string* cls = find_meta(meta, "class");
  CF_CHECK_VALUE(cls, where(path), ": the metadata has no model 'class'");
  const ModelClass* entry = nullptr;
  for (const auto& c : registry())
    if (c.name == *cls) entry = &c;
  if (!entry) {
    std::string known;
    for (const auto& c : registry()) known += (known.empty() ? "" : ", ") + c.name;
    throw ValueError(str_cat(where(path), ": unknown model class ", quote_for_message(*cls), " (known: ", known, ")"));
  }
  const std::string* config_text = find_meta(meta, "config");
  CF_CHECK_VALUE(config_text, where(path), ": the metadata has no model 'config'");
  DType dtype = DType::Float32;
  if (const std::string* d = find_meta(meta, "dtype")) {
    try {
      dtype = parse_dtype(*d, "dtype");
    } catch (const ValueError& e) {
      throw ValueError(str_cat(where(path), ": invalid model dtype in the metadata: ", e.what()));
    }
  }

  LoadedModel out;
  out.class_name = entry->name;
  try {
    out.config = Json::parse(*config_text);
    const NoInitGuard no_init;  // every value comes from the file
    out.module = entry->create(out.config);
    out.module->set_twin_factory([create = entry->create, config = out.config] { return create(config); });
  } catch (const ValueError& e) {
    throw ValueError(str_cat(where(path), ": invalid ", entry->name, " config in the metadata: ", e.what()));
  }
  if (dtype == DType::Float32) {
    for (auto& t : content.tensors) to_float(t);
    assign_parameters(path, entry->name, *out.module, content.tensors);
    out.module->flatten_parameters();  // after the copy: the file's tensors are gone by then
  } else {
    // Not flattened: the matrices' float32 values were never written, and
    // commit_packed drops them untouched.
    assign_quantized(path, entry->name, *out.module, content.tensors, dtype);
  }
  return out;
}

std::unique_ptr<GPT> load_gpt(const std::string& path) { return load_as<GPT>(path, "GPT"); }
std::unique_ptr<Seq2Seq> load_seq2seq(const std::string& path) { return load_as<Seq2Seq>(path, "Seq2Seq"); }
std::unique_ptr<BERT> load_bert(const std::string& path) { return load_as<BERT>(path, "BERT"); }
std::unique_ptr<ViT> load_vit(const std::string& path) { return load_as<ViT>(path, "ViT"); }

void save_model(const std::string& path, Module& model) {
  const ModelClass& entry = class_of(model);
  std::vector<NamedTensor> tensors;
  for (const auto& p : model.named_parameters()) {
    const Parameter& prm = *p.second;
    if (!prm.packed) {
      tensors.push_back({p.first, prm.value});
      continue;
    }
    const PackedWeight& w = *prm.packed;
    NamedTensor t;
    t.name = p.first;
    t.raw_shape = {w.rows, w.cols};
    if (w.dtype == DType::Int8) {
      t.raw_dtype = "I8";
      t.raw = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(w.rows * w.cols));
      unpack_int8(w, reinterpret_cast<int8_t*>(t.raw->data()));
      Tensor scale = Tensor::empty({w.rows});
      std::copy(w.scale.begin(), w.scale.end(), scale.data());
      tensors.push_back(std::move(t));
      tensors.push_back({p.first + ".scale", scale});
    } else {
      t.raw_dtype = "BF16";
      t.raw = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(w.rows * w.cols * 2));
      unpack_bf16(w, reinterpret_cast<uint16_t*>(t.raw->data()));
      tensors.push_back(std::move(t));
    }
  }
  Metadata meta = {
      {"format", kCheckpointFormat},
      {"format_version", kCheckpointFormatVersion},
      {"class", entry.name},
      {"config", entry.config_json(model).dump()},
      {"cpuformer_version", version()},
  };
  if (model.dtype() != DType::Float32) meta.emplace_back("dtype", dtype_name(model.dtype()));
  save_safetensors(path, tensors, meta);
}

}  // namespace cpuformer
