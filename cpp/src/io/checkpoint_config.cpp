// Model configs to and from JSON (cpuformer/io/checkpoint.hpp:
// gpt_config_from_json and the others): one table of fields per config
// struct drives both directions.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/io/checkpoint.hpp"

namespace cpuformer {

namespace {

template <class C>
struct Field {
  const char* name;
  std::variant<int64_t C::*, float C::*, bool C::*, std::string C::*> member;
  bool required;
};

template <class C>
using FieldList = std::vector<Field<C>>;

constexpr bool kRequired = true;
constexpr bool kOptional = false;  // missing -> the C++ struct's default (= the Python dataclass default)

// Field names, order and defaults follow python/cpuformer/models.py and
// python/cpuformer/_models_bert_vit.py. A field without a dataclass default is
// required even where the C++ struct has one (BERTConfig.type_vocab_size,
// ViTConfig.image_size, ...): what Python cannot read, C++ does not accept.
const FieldList<GPTConfig>& gpt_fields() {
  static const FieldList<GPTConfig> f = {
      {"vocab_size", &GPTConfig::vocab_size, kRequired}, {"block_size", &GPTConfig::block_size, kRequired},
      {"n_layer", &GPTConfig::n_layer, kRequired},       {"n_head", &GPTConfig::n_head, kRequired},
      {"n_embd", &GPTConfig::n_embd, kRequired},         {"dropout", &GPTConfig::dropout, kOptional},
      {"bias", &GPTConfig::bias, kOptional},
      {"layer_norm_eps", &GPTConfig::layer_norm_eps, kOptional},
      {"activation", &GPTConfig::activation, kOptional},
      {"n_inner", &GPTConfig::n_inner, kOptional},
      {"attention", &GPTConfig::attention, kOptional},   {"attention_window", &GPTConfig::attention_window, kOptional},
      {"num_global", &GPTConfig::num_global, kOptional}, {"num_features", &GPTConfig::num_features, kOptional},
      {"linformer_k", &GPTConfig::linformer_k, kOptional},
      {"bigbird_block_size", &GPTConfig::bigbird_block_size, kOptional},
      {"num_window_blocks", &GPTConfig::num_window_blocks, kOptional},
      {"num_global_blocks", &GPTConfig::num_global_blocks, kOptional},
      {"num_random_blocks", &GPTConfig::num_random_blocks, kOptional},
      {"bigbird_seed", &GPTConfig::bigbird_seed, kOptional},
  };
  return f;
}

const FieldList<Seq2SeqConfig>& seq2seq_fields() {
  static const FieldList<Seq2SeqConfig> f = {
      {"src_vocab_size", &Seq2SeqConfig::src_vocab_size, kRequired},
      {"tgt_vocab_size", &Seq2SeqConfig::tgt_vocab_size, kRequired},
      {"d_model", &Seq2SeqConfig::d_model, kOptional},
      {"nhead", &Seq2SeqConfig::nhead, kOptional},
      {"num_encoder_layers", &Seq2SeqConfig::num_encoder_layers, kOptional},
      {"num_decoder_layers", &Seq2SeqConfig::num_decoder_layers, kOptional},
      {"dim_feedforward", &Seq2SeqConfig::dim_feedforward, kOptional},
      {"dropout", &Seq2SeqConfig::dropout, kOptional},
      {"max_len", &Seq2SeqConfig::max_len, kOptional},
  };
  return f;
}

const FieldList<BERTConfig>& bert_fields() {
  static const FieldList<BERTConfig> f = {
      {"vocab_size", &BERTConfig::vocab_size, kRequired},
      {"max_position_embeddings", &BERTConfig::max_position_embeddings, kRequired},
      {"type_vocab_size", &BERTConfig::type_vocab_size, kRequired},
      {"n_layer", &BERTConfig::n_layer, kRequired},
      {"n_head", &BERTConfig::n_head, kRequired},
      {"hidden_size", &BERTConfig::hidden_size, kRequired},
      {"intermediate_size", &BERTConfig::intermediate_size, kRequired},
      {"dropout", &BERTConfig::dropout, kOptional},
      {"layer_norm_eps", &BERTConfig::layer_norm_eps, kOptional},
      {"activation", &BERTConfig::activation, kOptional},
      {"mlm_head", &BERTConfig::mlm_head, kOptional},
      {"pooler", &BERTConfig::pooler, kOptional},
      {"attention", &BERTConfig::attention, kOptional},   {"attention_window", &BERTConfig::attention_window, kOptional},
      {"num_global", &BERTConfig::num_global, kOptional}, {"num_features", &BERTConfig::num_features, kOptional},
      {"linformer_k", &BERTConfig::linformer_k, kOptional},
      {"bigbird_block_size", &BERTConfig::bigbird_block_size, kOptional},
      {"num_window_blocks", &BERTConfig::num_window_blocks, kOptional},
      {"num_global_blocks", &BERTConfig::num_global_blocks, kOptional},
      {"num_random_blocks", &BERTConfig::num_random_blocks, kOptional},
      {"bigbird_seed", &BERTConfig::bigbird_seed, kOptional},
  };
  return f;
}

const FieldList<ViTConfig>& vit_fields() {
  static const FieldList<ViTConfig> f = {
      {"image_size", &ViTConfig::image_size, kRequired},
      {"patch_size", &ViTConfig::patch_size, kRequired},
      {"num_channels", &ViTConfig::num_channels, kRequired},
      {"num_classes", &ViTConfig::num_classes, kRequired},
      {"hidden_size", &ViTConfig::hidden_size, kRequired},
      {"n_layer", &ViTConfig::n_layer, kRequired},
      {"n_head", &ViTConfig::n_head, kRequired},
      {"intermediate_size", &ViTConfig::intermediate_size, kRequired},
      {"dropout", &ViTConfig::dropout, kOptional},
      {"layer_norm_eps", &ViTConfig::layer_norm_eps, kOptional},
      {"activation", &ViTConfig::activation, kOptional},
  };
  return f;
}

// The shortest decimal that reads back as `f`, as a double: 0.1f is stored as
// 0.1 (what Python wrote), not 0.10000000149011612.
double float_for_json(float f) {
  char buf[32];
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(f));
    const double d = std::strtod(buf, nullptr);
    if (static_cast<float>(d) == f) return d;
  }
  return static_cast<double>(f);
}

template <class C>
C config_from_json(const char* config_name, const FieldList<C>& fields, const Json& j) {
  CF_CHECK_VALUE(j.is_object(), config_name, ": expected a JSON object, got ", j.type_name());
  for (const auto& member : j.as_object()) {
    bool known = false;
    for (const auto& f : fields) known = known || member.first == f.name;
    CF_CHECK_VALUE(known, config_name, ": unknown field ", quote_for_message(member.first));
  }
  C cfg;
  for (const auto& f : fields) {
    const Json* v = j.find(f.name);
    if (!v) {
      CF_CHECK_VALUE(!f.required, config_name, ": missing required field '", f.name, "'");
      continue;
    }
    if (auto* pi = std::get_if<int64_t C::*>(&f.member)) {
      CF_CHECK_VALUE(v->is_int(), config_name, ".", f.name, ": expected an int, got ", v->type_name());
      cfg.*(*pi) = v->as_int();
    } else if (auto* pf = std::get_if<float C::*>(&f.member)) {
      CF_CHECK_VALUE(v->is_number(), config_name, ".", f.name, ": expected a number, got ", v->type_name());
      cfg.*(*pf) = static_cast<float>(v->as_double());
    } else if (auto* ps = std::get_if<std::string C::*>(&f.member)) {
      CF_CHECK_VALUE(v->is_string(), config_name, ".", f.name, ": expected a string, got ", v->type_name());
      cfg.*(*ps) = v->as_string();
    } else {
      CF_CHECK_VALUE(v->is_bool(), config_name, ".", f.name, ": expected a bool, got ", v->type_name());
      cfg.*std::get<bool C::*>(f.member) = v->as_bool();
    }
  }
  cfg.validate();
  return cfg;
}

template <class C>
Json config_to_json(const FieldList<C>& fields, const C& cfg) {
  Json j = Json::object();
  for (const auto& f : fields) {
    if (auto* pi = std::get_if<int64_t C::*>(&f.member)) {
      j[f.name] = cfg.*(*pi);
    } else if (auto* pf = std::get_if<float C::*>(&f.member)) {
      j[f.name] = float_for_json(cfg.*(*pf));
    } else if (auto* ps = std::get_if<std::string C::*>(&f.member)) {
      j[f.name] = cfg.*(*ps);
    } else {
      j[f.name] = cfg.*std::get<bool C::*>(f.member);
    }
  }
  return j;
}

}  // namespace

GPTConfig gpt_config_from_json(const Json& config) { return config_from_json("GPTConfig", gpt_fields(), config); }
Json gpt_config_to_json(const GPTConfig& config) { return config_to_json(gpt_fields(), config); }
Seq2SeqConfig seq2seq_config_from_json(const Json& config) {
  return config_from_json("Seq2SeqConfig", seq2seq_fields(), config);
}
Json seq2seq_config_to_json(const Seq2SeqConfig& config) { return config_to_json(seq2seq_fields(), config); }
BERTConfig bert_config_from_json(const Json& config) { return config_from_json("BERTConfig", bert_fields(), config); }
Json bert_config_to_json(const BERTConfig& config) { return config_to_json(bert_fields(), config); }
ViTConfig vit_config_from_json(const Json& config) { return config_from_json("ViTConfig", vit_fields(), config); }
Json vit_config_to_json(const ViTConfig& config) { return config_to_json(vit_fields(), config); }

}  // namespace cpuformer
