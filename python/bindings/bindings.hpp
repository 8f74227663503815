// Registration functions, one per binding file; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>

namespace cfpy {
void bind_runtime(pybind11::module_& m);     // runtime.cpp
void bind_functional(pybind11::module_& m);  // functional.cpp: elementwise, norm, softmax, loss, embedding ops
void bind_attention(pybind11::module_& m);   // attention.cpp: scaled_dot_product_attention(+_backward)
void bind_functional_embed_loss(pybind11::module_& m);  // functional_embed_loss.cpp: embedding, positional encoding, cross-entropy
void bind_nn(pybind11::module_& m);          // nn.cpp: modules
void bind_models(pybind11::module_& m);      // models.cpp: GPT, Seq2Seq
void bind_generation(pybind11::module_& m);  // generation.cpp: GPT.generate_ex, GPTGeneration (after bind_models)
void bind_models_bert_vit(pybind11::module_& m);  // models_bert_vit.cpp: BERT, ViT
void bind_optim(pybind11::module_& m);       // optim.cpp: AdamW, SGD, clip_grad_norm
void bind_io(pybind11::module_& m);          // io.cpp: safetensors checkpoints
void bind_bench(pybind11::module_& m);
void bind_bigbird(pybind11::module_& m);     // bigbird.cpp: BigBird block-sparse attention
void bind_longseq(pybind11::module_& m);     // longseq.cpp: sliding-window, Performer and Linformer attention       // bench.cpp: FMA peak and GEMM throughput probes
}  // namespace cfpy
