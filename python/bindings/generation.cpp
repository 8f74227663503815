// GPT generation: GPT.generate with every option, and GPTGeneration, the
// step-by-step request behind Python's generate_stream. Glue only.
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <shared_mutex>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/models/generation.hpp"

namespace cfpy {

using namespace cpuformer;

namespace {

// The options as the Python layer passes them (already type-checked there).
GenerationOptions make_options(const IndexArray& ids, float temperature, int64_t top_k, float top_p,
                               py::object seed, py::handle attention_mask, const std::vector<int64_t>& eos,
                               int64_t pad_token_id, float repetition_penalty, int64_t min_new_tokens) {
  GenerationOptions o;
  o.sampling.temperature = temperature;
  o.sampling.top_k = top_k;
  o.sampling.top_p = top_p;
  if (!seed.is_none()) {
    o.sampling.seed = static_cast<uint64_t>(seed.cast<int64_t>());
    o.sampling.has_seed = true;
  }
  const std::vector<uint8_t> pad = padding_from_attention_mask(attention_mask, ids);
  o.attention_mask.resize(pad.size());
  for (size_t i = 0; i < pad.size(); ++i) o.attention_mask[i] = pad[i] ? 0 : 1;
  o.eos_token_ids = eos;
  o.pad_token_id = pad_token_id;
  o.repetition_penalty = repetition_penalty;
  o.min_new_tokens = min_new_tokens;
  return o;
}

// A request and the model it reads (kept alive while the request lives).
struct Request {
  std::shared_ptr<GPT> model;
  std::unique_ptr<GPTGeneration> gen;
};

}  // namespace

void bind_generation(py::module_& m) {
  py::class_<GPT, Module, std::shared_ptr<GPT>> gpt =
      py::reinterpret_borrow<py::class_<GPT, Module, std::shared_ptr<GPT>>>(m.attr("GPT"));
  gpt.def(
      "generate_ex",
      [](GPT& self, py::handle idx, int64_t max_new_tokens, float temperature, int64_t top_k, float top_p,
         py::object seed, py::handle attention_mask, const std::vector<int64_t>& eos, int64_t pad_token_id,
         float repetition_penalty, int64_t min_new_tokens) {
        IndexArray ids = ids_2d(idx, "idx");
        const GenerationOptions o = make_options(ids, temperature, top_k, top_p, seed, attention_mask, eos,
                                                 pad_token_id, repetition_penalty, min_new_tokens);
        const int64_t B = ids.shape(0), T = ids.shape(1);
        std::vector<int64_t> out;
        int64_t steps = 0;
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::shared_mutex> guard(self.call_mutex());
          out = self.generate(ids.data(), B, T, max_new_tokens, o, &steps);
        }
        return ids_to_numpy(std::move(out), B, T + steps);
      });

  py::class_<Request>(m, "GPTGeneration")
      .def(py::init([](std::shared_ptr<GPT> model, py::handle idx, int64_t max_new_tokens, float temperature,
                       int64_t top_k, float top_p, py::object seed, py::handle attention_mask,
                       const std::vector<int64_t>& eos, int64_t pad_token_id, float repetition_penalty,
                       int64_t min_new_tokens) {
        IndexArray ids = ids_2d(idx, "idx");
        GenerationOptions o = make_options(ids, temperature, top_k, top_p, seed, attention_mask, eos, pad_token_id,
                                           repetition_penalty, min_new_tokens);
        auto r = std::make_unique<Request>();
        r->model = model;
        std::shared_lock<std::shared_mutex> guard(model->call_mutex());
        r->gen = std::make_unique<GPTGeneration>(*model, ids.data(), ids.shape(0), ids.shape(1), max_new_tokens,
                                                 std::move(o));
        return r;
      }))
      // One step -> tokens [B] (or (tokens, logits [B, V]) with logits=True); None when the request is over.
      .def("step",
           [](Request& r, bool with_logits) -> py::object {
             const int64_t B = r.gen->batch(), V = r.model->config().vocab_size;
             py::array_t<int64_t> tokens(B);
             py::array_t<float> logits;
             if (with_logits) logits = py::array_t<float>({B, V});
             bool more;
             {
               int64_t* t = tokens.mutable_data();
               float* l = with_logits ? logits.mutable_data() : nullptr;
               py::gil_scoped_release nogil;
               std::lock_guard<std::shared_mutex> guard(r.model->call_mutex());
               more = r.gen->step(t, l);
             }
             if (!more) return py::none();
             if (with_logits) return py::make_tuple(tokens, logits);
             return tokens;
           },
           py::arg("logits") = false)
      .def("result",
           [](Request& r) {
             return ids_to_numpy(r.gen->result(), r.gen->batch(), r.gen->prompt_len() + r.gen->steps());
           })
      .def("close", [](Request& r) { r.gen->release(); })
      .def_property_readonly("steps", [](const Request& r) { return r.gen->steps(); })
      .def_property_readonly("live_rows", [](const Request& r) { return r.gen->live_rows(); })
      .def_property_readonly("done", [](const Request& r) { return r.gen->done(); })
      .def_property_readonly("pad_token_id", [](const Request& r) { return r.gen->pad_token_id(); })
      .def_property_readonly("cache_bytes", [](const Request& r) { return r.gen->cache_bytes(); })
      .def_static("live_cache_bytes", &GPTGeneration::live_cache_bytes);
}

}  // namespace cfpy
