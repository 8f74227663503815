// Model checkpoints from C++ (io/checkpoint.hpp): round trips for every
// registered class, the Python file layout (metadata, config JSON, training
// state prefixes), and files that must be rejected with a clear message.
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "check.hpp"
#include "cpuformer/cpuformer.hpp"
#include "fixtures.hpp"

using namespace cpuformer;
using cftest::contains;
using cftest::error_of;

namespace {

const char kPrefix[] = "test_checkpoint";

std::string scratch_path(const std::string& stem) { return cftest::scratch_path(kPrefix, stem); }

// A scratch checkpoint removed at the end of the test.
struct Scratch : cftest::ScratchFile {
  explicit Scratch(const std::string& stem) : cftest::ScratchFile(kPrefix, stem) {}
};

GPTConfig small_gpt_config() {
  GPTConfig c = cftest::gpt_config(11, 8, 2, 16, 0.1f);
  c.bias = false;
  return c;
}

Metadata gpt_metadata(const std::string& config) {
  return {{"format", "cpuformer"}, {"format_version", "1"}, {"class", "GPT"}, {"config", config}};
}

// The parameters of `m` as (name, tensor) pairs, renamed by `rename`.
std::vector<NamedTensor> tensors_of(Module& m, const std::function<std::string(const std::string&)>& rename) {
  std::vector<NamedTensor> out;
  for (auto& p : m.named_parameters()) out.push_back({rename(p.first), p.second->value});
  return out;
}

std::string same(const std::string& s) { return s; }

bool same_parameters(Module& a, Module& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor &x = pa[i].second->value, &y = pb[i].second->value;
    if (pa[i].first != pb[i].first || x.shape() != y.shape()) return false;
    for (int64_t j = 0; j < x.numel(); ++j)
      if (x.data()[j] != y.data()[j]) return false;
  }
  return true;
}

BERTConfig small_bert_config() {
  BERTConfig c = cftest::bert_config(13, 10, 16);
  c.dropout = 0.2f;
  return c;
}

ViTConfig small_vit_config() {
  ViTConfig c = cftest::vit_config(8, 4, 2, 5, 1, 16);
  c.dropout = 0.1f;
  return c;
}

bool same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a.data()[i] != b.data()[i]) return false;
  return true;
}

}  // namespace

CF_TEST(gpt_round_trips_parameters_config_and_outputs) {
  manual_seed(1);
  GPT a(small_gpt_config());
  const Scratch file("gpt");
  const std::string& path = file.path;
  save_model(path, a);
  std::unique_ptr<GPT> b = load_gpt(path);
  CHECK(b->training());  // like a fresh model and Python's cpuformer.load
  CHECK(b->config().vocab_size == 11 && b->config().block_size == 8 && b->config().n_layer == 2);
  CHECK(b->config().n_head == 2 && b->config().n_embd == 16 && b->config().dropout == 0.1f && !b->config().bias);
  CHECK(same_parameters(a, *b));
  a.eval();
  b->eval();
  const std::vector<int64_t> idx = {1, 2, 3, 4, 10, 0, 5, 7};
  Tensor ya = a.forward(idx.data(), 2, 4), yb = b->forward(idx.data(), 2, 4);
  bool equal = ya.shape() == yb.shape();
  for (int64_t i = 0; equal && i < ya.numel(); ++i) equal = ya.data()[i] == yb.data()[i];
  CHECK(equal);

  // The metadata Python reads.
  const Metadata meta = read_safetensors_metadata(path);
  CHECK(meta.size() == 5);
  CHECK(meta[0].first == "format" && meta[0].second == "cpuformer");
  CHECK(meta[1].first == "format_version" && meta[1].second == "1");
  CHECK(meta[2].first == "class" && meta[2].second == "GPT");
  CHECK(meta[3].first == "config" &&
        meta[3].second ==
            R"({"vocab_size":11,"block_size":8,"n_layer":2,"n_head":2,"n_embd":16,"dropout":0.1,"bias":false,)"
            R"("layer_norm_eps":1e-05,"activation":"gelu_tanh","n_inner":0,)"
            R"("attention":"full","attention_window":256,"num_global":0,"num_features":256,"linformer_k":256,)"
                       R"("bigbird_block_size":64,"num_window_blocks":3,"num_global_blocks":2,"num_random_blocks":3,)"
                       R"("bigbird_seed":0})");
  CHECK(meta[4].first == "cpuformer_version" && meta[4].second == version());
}

CF_TEST(load_model_returns_the_saved_class) {
  Seq2SeqConfig c = cftest::seq2seq_config(9, 7, 16, 24);
  c.nhead = 4;
  c.num_decoder_layers = 2;
  c.dropout = 0.25f;
  c.max_len = 20;
  manual_seed(2);
  Seq2Seq s(c);
  const Scratch file("seq2seq");
  const std::string& path = file.path;
  save_model(path, s);
  LoadedModel m = load_model(path);
  CHECK(m.class_name == "Seq2Seq");
  CHECK(m.as<GPT>() == nullptr);
  Seq2Seq* back = m.as<Seq2Seq>();
  CHECK(back != nullptr);
  if (back) {
    CHECK(back->config().num_decoder_layers == 2 && back->config().dim_feedforward == 24);
    CHECK(back->config().dropout == 0.25f && back->config().max_len == 20);
    CHECK(same_parameters(s, *back));
  }
  CHECK(m.config["tgt_vocab_size"].as_int() == 7);
  CHECK(load_seq2seq(path) != nullptr);
  const std::string e = error_of([&] { load_gpt(path); });
  CHECK(contains(e, "expected a GPT checkpoint") && contains(e, "Seq2Seq"));
}

CF_TEST(bert_round_trips_parameters_config_and_hidden_states) {
  manual_seed(21);
  BERT a(small_bert_config());
  const Scratch file("bert");
  const std::string& path = file.path;
  save_model(path, a);
  std::unique_ptr<BERT> b = load_bert(path);
  CHECK(b->training());
  CHECK(same_parameters(a, *b));
  const BERTConfig& c = b->config();
  CHECK(c.vocab_size == 13 && c.max_position_embeddings == 10 && c.type_vocab_size == 2 && c.n_layer == 2);
  CHECK(c.n_head == 2 && c.hidden_size == 8 && c.intermediate_size == 16 && c.dropout == 0.2f);
  CHECK(c.layer_norm_eps == 1e-12f);
  a.eval();
  b->eval();
  const std::vector<int64_t> ids = {1, 2, 3, 12, 0, 5, 7, 9, 4, 4};
  const Tensor ha = a.forward(ids.data(), nullptr, 2, 5).clone();
  const Tensor hb = b->forward(ids.data(), nullptr, 2, 5);
  CHECK(hb.shape() == (std::vector<int64_t>{2, 5, 8}));
  CHECK(same_values(ha, hb));
  // The config exactly as Python's BERTConfig.to_dict() names it.
  const Metadata meta = read_safetensors_metadata(path);
  CHECK(meta[2].second == "BERT");
  CHECK(meta[3].second ==
        R"({"vocab_size":13,"max_position_embeddings":10,"type_vocab_size":2,"n_layer":2,"n_head":2,)"
        R"("hidden_size":8,"intermediate_size":16,"dropout":0.2,"layer_norm_eps":1e-12,"activation":"gelu",)"
        R"("mlm_head":true,"pooler":false,)"
        R"("attention":"full","attention_window":256,"num_global":0,"num_features":256,"linformer_k":256,)"
                       R"("bigbird_block_size":64,"num_window_blocks":3,"num_global_blocks":2,"num_random_blocks":3,)"
                       R"("bigbird_seed":0})");
  LoadedModel any = load_model(path);
  CHECK(any.class_name == "BERT" && any.as<BERT>() != nullptr && any.as<GPT>() == nullptr);
  CHECK(contains(error_of([&] { load_vit(path); }), "expected a ViT checkpoint, got class 'BERT'"));
}

CF_TEST(vit_round_trips_parameters_config_and_logits) {
  manual_seed(22);
  ViT a(small_vit_config());
  const Scratch file("vit");
  const std::string& path = file.path;
  save_model(path, a);
  std::unique_ptr<ViT> b = load_vit(path);
  CHECK(same_parameters(a, *b));
  const ViTConfig& c = b->config();
  CHECK(c.image_size == 8 && c.patch_size == 4 && c.num_channels == 2 && c.num_classes == 5);
  CHECK(c.hidden_size == 8 && c.n_layer == 1 && c.n_head == 2 && c.intermediate_size == 16 && c.dropout == 0.1f);
  a.eval();
  b->eval();
  std::vector<float> images(3 * 2 * 8 * 8);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>((i * 37) % 17) / 8.0f - 1.0f;
  const Tensor ya = a.forward(images.data(), 3, 2, 8, 8).clone();
  const Tensor yb = b->forward(images.data(), 3, 2, 8, 8);
  CHECK(yb.shape() == (std::vector<int64_t>{3, 5}));
  CHECK(same_values(ya, yb));
  const Metadata meta = read_safetensors_metadata(path);
  CHECK(meta[2].second == "ViT");
  CHECK(meta[3].second ==
        R"({"image_size":8,"patch_size":4,"num_channels":2,"num_classes":5,"hidden_size":8,"n_layer":1,)"
        R"("n_head":2,"intermediate_size":16,"dropout":0.1,"layer_norm_eps":1e-12,"activation":"gelu"})");
  CHECK(contains(error_of([&] { load_bert(path); }), "expected a BERT checkpoint, got class 'ViT'"));
}

CF_TEST(registry_lists_classes_and_rejects_other_modules) {
  const auto names = model_class_names();
  CHECK(names.size() == 4 && names[0] == "GPT" && names[1] == "Seq2Seq" && names[2] == "BERT" && names[3] == "ViT");
  Linear lin(3, 4);
  CHECK_THROWS(TypeError, save_model(scratch_path("linear"), lin));
  CHECK_THROWS(TypeError, model_class_name(lin));
  GPT g(small_gpt_config());
  CHECK(model_class_name(g) == "GPT");
}

CF_TEST(configs_follow_the_python_dataclasses) {
  // Optional fields take the dataclass defaults.
  GPTConfig g = gpt_config_from_json(
      Json::parse(R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 8})"));
  CHECK(g.dropout == 0.0f && g.bias);
  Seq2SeqConfig s = seq2seq_config_from_json(Json::parse(R"({"src_vocab_size": 5, "tgt_vocab_size": 6})"));
  CHECK(s.d_model == 512 && s.nhead == 8 && s.num_encoder_layers == 6 && s.dim_feedforward == 2048);
  CHECK(s.dropout == 0.1f && s.max_len == 512);
  BERTConfig b = bert_config_from_json(Json::parse(
      R"({"vocab_size": 5, "max_position_embeddings": 6, "type_vocab_size": 1, "n_layer": 1, "n_head": 2,
          "hidden_size": 4, "intermediate_size": 8})"));
  CHECK(b.dropout == 0.1f && b.layer_norm_eps == 1e-12f && b.type_vocab_size == 1);
  ViTConfig v = vit_config_from_json(Json::parse(
      R"({"image_size": 4, "patch_size": 2, "num_channels": 1, "num_classes": 3, "hidden_size": 4, "n_layer": 1,
          "n_head": 1, "intermediate_size": 8})"));
  CHECK(v.dropout == 0.0f && v.layer_norm_eps == 1e-12f && v.num_patches() == 4);
  // Fields the Python dataclasses require are required here too, even where
  // the C++ struct has a default.
  CHECK(contains(error_of([] {
                   bert_config_from_json(Json::parse(R"({"vocab_size": 5, "max_position_embeddings": 6,
                       "n_layer": 1, "n_head": 2, "hidden_size": 4, "intermediate_size": 8})"));
                 }),
                 "BERTConfig: missing required field 'type_vocab_size'"));
  CHECK(contains(error_of([] {
                   vit_config_from_json(Json::parse(R"({"patch_size": 2, "num_channels": 1, "num_classes": 3,
                       "hidden_size": 4, "n_layer": 1, "n_head": 1, "intermediate_size": 8})"));
                 }),
                 "ViTConfig: missing required field 'image_size'"));
  CHECK(contains(error_of([] {
                   vit_config_from_json(Json::parse(R"({"image_size": 5, "patch_size": 2, "num_channels": 1,
                       "num_classes": 3, "hidden_size": 4, "n_layer": 1, "n_head": 1, "intermediate_size": 8})"));
                 }),
                 "must be divisible by patch_size"));
  // An int where a float is expected is fine (Python accepts it too).
  g = gpt_config_from_json(
      Json::parse(R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 8, "dropout": 0})"));
  CHECK(g.dropout == 0.0f);

  auto err = [](const char* text) { return error_of([&] { gpt_config_from_json(Json::parse(text)); }); };
  CHECK(contains(err(R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 1})"),
                 "missing required field 'n_embd'"));
  CHECK(contains(err(R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 8, "x": 1})"),
                 "unknown field 'x'"));
  CHECK(contains(err(R"({"vocab_size": 5.0, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 8})"),
                 "vocab_size: expected an int, got double"));
  CHECK(contains(err(R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 8, "bias": 1})"),
                 "bias: expected a bool, got int"));
  CHECK(contains(err(R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 3, "n_embd": 8})"),
                 "divisible"));
  CHECK(contains(err(R"([1, 2])"), "expected a JSON object"));
  // The Hugging Face options: defaults keep the original architecture, strings round-trip.
  CHECK(g.layer_norm_eps == 1e-5f && g.activation == "gelu_tanh" && g.n_inner == 0 && g.ff_width() == 32);
  CHECK(b.activation == "gelu" && b.mlm_head && !b.pooler && v.activation == "gelu");
  CHECK(contains(err(R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 8, "activation": 1})"),
                 "activation: expected a string, got int"));
  CHECK(contains(err(R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 8,
                         "activation": "swish"})"),
                 "GPTConfig.activation must be"));
  GPTConfig h = small_gpt_config();
  h.activation = "relu";
  h.n_inner = 24;
  h.layer_norm_eps = 1e-6f;
  const GPTConfig h2 = gpt_config_from_json(Json::parse(gpt_config_to_json(h).dump()));
  CHECK(h2.activation == "relu" && h2.n_inner == 24 && h2.layer_norm_eps == 1e-6f);
  // Floats are written as the shortest decimal that reads back exactly.
  GPTConfig d = small_gpt_config();
  d.dropout = 0.3f;
  CHECK(gpt_config_to_json(d)["dropout"].as_double() == 0.3);
}

CF_TEST(training_state_files_load_and_optimizer_buffers_are_ignored) {
  manual_seed(3);
  GPT a(small_gpt_config());
  const Scratch file("training_state");
  const std::string& path = file.path;
  std::vector<NamedTensor> tensors = tensors_of(a, [](const std::string& n) { return "model." + n; });
  tensors.push_back({"optim.exp_avg", Tensor::zeros({3})});
  save_safetensors(path, tensors, gpt_metadata(gpt_config_to_json(a.config()).dump()));
  std::unique_ptr<GPT> b = load_gpt(path);
  CHECK(same_parameters(a, *b));
}

CF_TEST(invalid_checkpoints_are_rejected_with_the_reason) {
  manual_seed(4);
  GPT a(small_gpt_config());
  const std::string config = gpt_config_to_json(a.config()).dump();
  const Scratch file("bad");
  const std::string& path = file.path;
  auto load_err = [&](const std::vector<NamedTensor>& tensors, const Metadata& meta) {
    save_safetensors(path, tensors, meta);
    return error_of([&] { load_model(path); });
  };
  const auto params = tensors_of(a, same);

  CHECK(contains(load_err(params, {}), "not a cpuformer checkpoint"));
  CHECK(contains(load_err(params, {{"format", "cpuformer"}, {"format_version", "2"}, {"class", "GPT"},
                                   {"config", config}}),
                 "unsupported checkpoint format_version '2'"));
  CHECK(contains(load_err(params, {{"format", "cpuformer"}, {"format_version", "1"}, {"class", "Llama"},
                                   {"config", config}}),
                 "unknown model class 'Llama' (known: GPT, Seq2Seq, BERT, ViT)"));
  CHECK(contains(load_err(params, {{"format", "cpuformer"}, {"format_version", "1"}, {"config", config}}),
                 "no model 'class'"));
  CHECK(contains(load_err(params, {{"format", "cpuformer"}, {"format_version", "1"}, {"class", "GPT"}}),
                 "no model 'config'"));
  CHECK(contains(load_err(params, gpt_metadata("{not json")), "invalid GPT config"));
  CHECK(contains(load_err(params, gpt_metadata(R"({"vocab_size": 11})")), "missing required field"));

  std::vector<NamedTensor> missing(params.begin() + 1, params.end());
  std::string e = load_err(missing, gpt_metadata(config));
  CHECK(contains(e, "missing ['wte.weight']") && contains(e, "unexpected []"));

  std::vector<NamedTensor> extra = params;
  extra.push_back({"lm_head.weight", Tensor::zeros({11, 16})});
  CHECK(contains(load_err(extra, gpt_metadata(config)), "unexpected ['lm_head.weight']"));

  std::vector<NamedTensor> twice = params;
  twice.push_back({"model.wte.weight", params[0].value});
  CHECK(contains(load_err(twice, gpt_metadata(config)), "'wte.weight' is stored twice"));

  std::vector<NamedTensor> reshaped = params;
  reshaped[0].value = Tensor::zeros({16, 11});
  e = load_err(reshaped, gpt_metadata(config));
  CHECK(contains(e, "wte.weight: expected shape [11, 16]") && contains(e, "got [16, 11]"));

  // A config that disagrees with the tensors (wider model).
  Json wider = gpt_config_to_json(a.config());
  wider["n_embd"] = 32;
  CHECK(contains(load_err(params, gpt_metadata(wider.dump())), "expected shape"));

  const std::string nowhere = scratch_path("does_not_exist");
  CHECK_THROWS(FileError, load_model(nowhere));
  CHECK(contains(error_of([&] { load_model(nowhere); }), "No such file"));
}

CF_TEST(cpp_can_train_a_loaded_model_and_save_it) {
  manual_seed(5);
  GPTConfig c = small_gpt_config();
  c.dropout = 0.0f;
  GPT a(c);
  const Scratch file_in("train_in"), file_out("train_out");
  const std::string &path = file_in.path, &out = file_out.path;
  save_model(path, a);
  std::unique_ptr<GPT> m = load_gpt(path);
  AdamW opt(*m, 1e-2f);
  const std::vector<int64_t> idx = {1, 2, 3, 4, 5, 6, 7, 8}, tgt = {2, 3, 4, 5, 6, 7, 8, 9};
  float first = 0.0f, last = 0.0f;
  for (int step = 0; step < 20; ++step) {
    opt.zero_grad();
    last = m->loss(idx.data(), tgt.data(), 2, 4);
    if (step == 0) first = last;
    m->backward();
    opt.step();
  }
  CHECK(last < first * 0.5f);
  save_model(out, *m);
  std::unique_ptr<GPT> back = load_gpt(out);
  CHECK(same_parameters(*m, *back));
  CHECK(!same_parameters(a, *back));
}

// eval() must reach every dropout, the embedding dropouts included: two
// forwards in eval mode are identical, two in training mode are not.
CF_TEST(eval_turns_off_every_dropout) {
  GPTConfig c = small_gpt_config();
  c.dropout = 0.5f;
  GPT g(c);
  const std::vector<int64_t> idx = {1, 2, 3, 4, 5, 6, 7, 8};
  auto forward_twice_equal = [&](auto&& fwd) {
    Tensor a = fwd().clone(), b = fwd();
    for (int64_t i = 0; i < a.numel(); ++i)
      if (a.data()[i] != b.data()[i]) return false;
    return true;
  };
  auto gpt_fwd = [&] { return g.forward(idx.data(), 2, 4); };
  CHECK(!forward_twice_equal(gpt_fwd));
  g.eval();
  CHECK(forward_twice_equal(gpt_fwd));

  Seq2SeqConfig sc = cftest::seq2seq_config(9, 9, 8, 16);
  sc.dropout = 0.5f;
  Seq2Seq s(sc);
  auto s_fwd = [&] { return s.forward(idx.data(), 2, 4, idx.data(), 4); };
  CHECK(!forward_twice_equal(s_fwd));
  s.eval();
  CHECK(forward_twice_equal(s_fwd));
}

CF_TEST_MAIN()
