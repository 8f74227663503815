// Model checkpoints: the files Python's `model.save(path)` writes and
// `cpuformer.load(path)` reads, from C++.
//
// A checkpoint is a safetensors file (io/safetensors.hpp) holding every
// parameter as F32 under its named_parameters() name, plus string metadata:
//   format          "cpuformer"
//   format_version  "1"
//   class           the model class: "GPT", "Seq2Seq", "BERT", "ViT"
//   config          JSON object of the config's fields, e.g. for GPT
//                   {"vocab_size": 65, "block_size": 256, "n_layer": 6, "n_head": 6,
//                    "n_embd": 384, "dropout": 0.0, "bias": true}
//   cpuformer_version  the library version that wrote it (informational)
// Training-state files (Python's save_training_state) hold the same metadata
// with parameters named "model.<name>" and optimizer buffers "optim.<name>";
// the loaders accept them too and ignore the optimizer buffers.
//
// Model classes live in one registry inside checkpoint.cpp: adding a class is
// one entry (name, config reader, config writer).
//
//   auto gpt = cpuformer::load_gpt("model.safetensors");          // std::unique_ptr<GPT>
//   cpuformer::LoadedModel any = cpuformer::load_model("model.safetensors");
//   if (auto* s = any.as<cpuformer::Seq2Seq>()) { ... }
//   cpuformer::save_model("trained.safetensors", *gpt);          // Python can cpuformer.load() it
//
// Errors: FileError for I/O failures; ValueError for a file that is not a
// valid cpuformer checkpoint (missing or wrong metadata, unknown class,
// invalid config, missing/unexpected tensors or wrong shapes), with a message
// naming the file; TypeError from save_model for a module that is not a
// registered model class.
//
// Loaded models are in training mode (like a freshly constructed one and like
// Python's cpuformer.load); call eval() before inference when the config has
// dropout.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "cpuformer/io/json.hpp"
#include "cpuformer/io/safetensors.hpp"
#include "cpuformer/models/bert.hpp"
#include "cpuformer/models/gpt.hpp"
#include "cpuformer/models/seq2seq.hpp"
#include "cpuformer/models/vit.hpp"
#include "cpuformer/nn/module.hpp"

namespace cpuformer {

constexpr const char* kCheckpointFormat = "cpuformer";
constexpr const char* kCheckpointFormatVersion = "1";

// A model of any registered class, as read from a checkpoint.
struct LoadedModel {
  std::string class_name;          // "GPT", "Seq2Seq", "BERT", "ViT"
  Json config;                     // the config object as stored in the file
  std::unique_ptr<Module> module;  // the model, parameters loaded

  // The model as class M, or nullptr when it is of another class.
  template <class M>
  M* as() const {
    return dynamic_cast<M*>(module.get());
  }
};

// Reads any registered model class.
LoadedModel load_model(const std::string& path);

// Reads a checkpoint that must hold the given class (ValueError naming the
// class found otherwise).
std::unique_ptr<GPT> load_gpt(const std::string& path);
std::unique_ptr<Seq2Seq> load_seq2seq(const std::string& path);
std::unique_ptr<BERT> load_bert(const std::string& path);
std::unique_ptr<ViT> load_vit(const std::string& path);

// Writes `model` (a registered class: GPT, Seq2Seq, BERT, ViT) in the format above,
// atomically (see save_safetensors). TypeError for other modules.
void save_model(const std::string& path, Module& model);

// Class name and config JSON of a model of a registered class (TypeError otherwise).
std::string model_class_name(const Module& model);
Json model_config_json(const Module& model);

// Config <-> JSON with the field names and defaults of Python's config
// dataclasses. The readers reject unknown fields, missing required fields and
// wrong types with a ValueError naming the field, then validate().
GPTConfig gpt_config_from_json(const Json& config);
Json gpt_config_to_json(const GPTConfig& config);
Seq2SeqConfig seq2seq_config_from_json(const Json& config);
Json seq2seq_config_to_json(const Seq2SeqConfig& config);
BERTConfig bert_config_from_json(const Json& config);
Json bert_config_to_json(const BERTConfig& config);
ViTConfig vit_config_from_json(const Json& config);
Json vit_config_to_json(const ViTConfig& config);

// The registered class names, in registry order.
std::vector<std::string> model_class_names();

}  // namespace cpuformer
