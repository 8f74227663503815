// A C++ program using the cpuformer C++ API (<cpuformer/cpuformer.hpp>).
//
//   consumer_cpp forward  <ckpt> <batch> <seq_len> <out.f32> <tokens...>
//   consumer_cpp forward-images <ckpt> <batch> <channels> <height> <width> <num_classes> <images.f32> <out.f32>
//   consumer_cpp generate <ckpt> <batch> <prompt_len> <max_new> <temperature> <top_k> <top_p> <seed> <tokens...>
//   consumer_cpp train    <ckpt> <steps> <lr> <batch> <seq_len> <out_ckpt> <inputs...> <targets...>
//   consumer_cpp train-bf16 (the same arguments)
//   consumer_cpp errors   <ckpt>
//   consumer_cpp resave   <ckpt> <out_ckpt>
//
// forward writes the GPT logits or the BERT last hidden state as raw float32;
// forward-images reads raw float32 images and writes the ViT logits; generate prints one row of ids
// per line; train runs AdamW steps (printing "step <i> loss <value>") and
// saves the trained model where Python's cpuformer.load() can read it
// (train-bf16: the same under cpuformer::AutocastGuard, bf16 products);
// errors checks that failures arrive as cpuformer::Error exceptions; resave
// loads a checkpoint of any class and writes it again with save_model.
#include <cpuformer/cpuformer.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace cf = cpuformer;

namespace {

std::vector<int64_t> parse_tokens(char** argv, int argc, int64_t n) {
  if (argc < n) throw cf::ValueError(cf::str_cat("expected ", n, " tokens, got ", argc));
  std::vector<int64_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = std::strtoll(argv[i], nullptr, 10);
  return t;
}

void write_floats(const char* path, const cf::Tensor& t) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.numel() * sizeof(float)));
  if (!out) throw cf::Error(std::string("cannot write ") + path);
}

int cmd_forward(char** argv, int argc) {
  cf::LoadedModel model = cf::load_model(argv[0]);
  model.module->eval();
  const int64_t B = std::atoll(argv[1]), T = std::atoll(argv[2]);
  const std::vector<int64_t> idx = parse_tokens(argv + 4, argc - 4, B * T);
  cf::Tensor y;
  if (cf::GPT* gpt = model.as<cf::GPT>()) {
    y = gpt->forward(idx.data(), B, T);  // logits [B, T, V]
  } else if (cf::BERT* bert = model.as<cf::BERT>()) {
    y = bert->forward(idx.data(), nullptr, B, T);  // last hidden state [B, T, H]
  } else {
    throw cf::Error("forward: expected a GPT or BERT checkpoint, got " + model.class_name);
  }
  write_floats(argv[3], y);
  std::cout << "output " << cf::shape_str(y.shape()) << "\n";
  return 0;
}

int cmd_resave(const char* in, const char* out) {
  cf::LoadedModel model = cf::load_model(in);
  cf::save_model(out, *model.module);
  std::cout << "saved " << model.class_name << "\n";
  return 0;
}

int cmd_forward_images(char** argv) {
  std::unique_ptr<cf::ViT> model = cf::load_vit(argv[0]);
  model->eval();
  const int64_t B = std::atoll(argv[1]), C = std::atoll(argv[2]), H = std::atoll(argv[3]), W = std::atoll(argv[4]);
  std::vector<float> images(static_cast<size_t>(B * C * H * W));
  std::ifstream in(argv[6], std::ios::binary);
  in.read(reinterpret_cast<char*>(images.data()), static_cast<std::streamsize>(images.size() * sizeof(float)));
  if (!in) throw cf::Error(std::string("cannot read the images from ") + argv[6]);
  const cf::Tensor logits = model->forward(images.data(), B, C, H, W);  // [B, num_classes]
  write_floats(argv[7], logits);
  std::cout << "logits " << cf::shape_str(logits.shape()) << "\n";
  return 0;
}

int cmd_generate(char** argv, int argc) {
  std::unique_ptr<cf::GPT> model = cf::load_gpt(argv[0]);
  const int64_t B = std::atoll(argv[1]), T = std::atoll(argv[2]), max_new = std::atoll(argv[3]);
  cf::SamplingOptions opt;
  opt.temperature = std::strtof(argv[4], nullptr);
  opt.top_k = std::atoll(argv[5]);
  opt.top_p = std::strtof(argv[6], nullptr);
  opt.seed = std::strtoull(argv[7], nullptr, 10);
  opt.has_seed = true;
  const std::vector<int64_t> prompt = parse_tokens(argv + 8, argc - 8, B * T);
  const std::vector<int64_t> out = model->generate(prompt.data(), B, T, max_new, opt);
  const int64_t total = T + max_new;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < total; ++t) std::cout << (t ? " " : "") << out[static_cast<size_t>(b * total + t)];
    std::cout << "\n";
  }
  return 0;
}

int cmd_train(char** argv, int argc, bool bf16) {
  std::unique_ptr<cf::GPT> model = cf::load_gpt(argv[0]);
  const int steps = std::atoi(argv[1]);
  const float lr = std::strtof(argv[2], nullptr);
  const int64_t B = std::atoll(argv[3]), T = std::atoll(argv[4]);
  const std::string out_path = argv[5];
  const std::vector<int64_t> inputs = parse_tokens(argv + 6, argc - 6, B * T);
  const std::vector<int64_t> targets = parse_tokens(argv + 6 + B * T, argc - 6 - static_cast<int>(B * T), B * T);
  cf::AdamW opt(*model, lr);
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    float loss;
    {
      // train-bf16: the products in bfloat16, as Python's cf.autocast
      cf::AutocastGuard cast(bf16 ? cf::DType::BFloat16 : cf::DType::Float32);
      loss = model->loss(inputs.data(), targets.data(), B, T);
      model->backward();
    }
    opt.step();
    std::printf("step %d loss %.9g\n", step, loss);
  }
  cf::save_model(out_path, *model);
  std::cout << "saved " << out_path << " (" << model->num_parameters() << " parameters)\n";
  return 0;
}

int cmd_errors(const char* path) {
  int failures = 0;
  auto expect_error = [&](const char* what, auto&& fn) {
    try {
      fn();
      std::printf("FAIL %s: no exception\n", what);
      ++failures;
    } catch (const cf::Error& e) {
      std::printf("ok %s: %s\n", what, e.what());
    }
  };
  expect_error("load a missing file", [] { cf::load_gpt("/nonexistent/dir/model.safetensors"); });
  std::unique_ptr<cf::GPT> model = cf::load_gpt(path);
  const int64_t V = model->config().vocab_size;
  std::vector<int64_t> idx = {0, 1, V};
  expect_error("token out of range", [&] { model->forward(idx.data(), 1, 3); });
  expect_error("sequence longer than block_size", [&] {
    std::vector<int64_t> long_idx(static_cast<size_t>(model->config().block_size + 1), 0);
    model->forward(long_idx.data(), 1, static_cast<int64_t>(long_idx.size()));
  });
  expect_error("backward before loss", [&] { model->backward(); });
  cf::Linear lin(2, 3);
  expect_error("save a non-model module", [&] { cf::save_model("unused.safetensors", lin); });
  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 6 && std::strcmp(argv[1], "forward") == 0) return cmd_forward(argv + 2, argc - 2);
    if (argc >= 10 && std::strcmp(argv[1], "forward-images") == 0) return cmd_forward_images(argv + 2);
    if (argc >= 10 && std::strcmp(argv[1], "generate") == 0) return cmd_generate(argv + 2, argc - 2);
    if (argc >= 8 && std::strcmp(argv[1], "train") == 0) return cmd_train(argv + 2, argc - 2, false);
    if (argc >= 8 && std::strcmp(argv[1], "train-bf16") == 0) return cmd_train(argv + 2, argc - 2, true);
    if (argc >= 3 && std::strcmp(argv[1], "errors") == 0) return cmd_errors(argv[2]);
    if (argc >= 4 && std::strcmp(argv[1], "resave") == 0) return cmd_resave(argv[2], argv[3]);
    std::fprintf(stderr, "usage: consumer_cpp forward|forward-images|generate|train|train-bf16|errors|resave ... (see the comment "
                         "at the top)\n");
    return 2;
  } catch (const cf::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
