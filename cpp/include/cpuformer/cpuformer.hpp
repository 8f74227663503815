// cpuformer: the whole public C++ API in one include.
//
//   #include <cpuformer/cpuformer.hpp>
//   auto model = cpuformer::load_gpt("model.safetensors");   // written by Python's model.save()
//   cpuformer::AdamW opt(*model, 1e-3f);
//   float loss = model->loss(idx, targets, B, T);
//   model->backward();
//   opt.step();
//   opt.zero_grad();
//   cpuformer::save_model("trained.safetensors", *model);
//
// Every entry point throws exceptions derived from cpuformer::Error
// (error.hpp). The stateless kernels under cpuformer/ops/ are not included
// here; include them one by one if you need them. For C, see c_api.h.
#pragma once

#include "cpuformer/error.hpp"
#include "cpuformer/tensor.hpp"

#include "cpuformer/runtime/allocator.hpp"
#include "cpuformer/runtime/autocast.hpp"
#include "cpuformer/runtime/build_info.hpp"
#include "cpuformer/runtime/memory.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "cpuformer/runtime/threads.hpp"

#include "cpuformer/nn/activation.hpp"
#include "cpuformer/nn/embedding.hpp"
#include "cpuformer/nn/layer_norm.hpp"
#include "cpuformer/nn/linear.hpp"
#include "cpuformer/nn/loss.hpp"
#include "cpuformer/nn/module.hpp"
#include "cpuformer/nn/multihead_attention.hpp"
#include "cpuformer/nn/transformer.hpp"
#include "cpuformer/nn/transformer_layer.hpp"

#include "cpuformer/models/bert.hpp"
#include "cpuformer/models/generation.hpp"
#include "cpuformer/models/gpt.hpp"
#include "cpuformer/models/seq2seq.hpp"
#include "cpuformer/models/vit.hpp"

#include "cpuformer/optim/optimizer.hpp"

#include "cpuformer/io/checkpoint.hpp"
#include "cpuformer/io/json.hpp"
#include "cpuformer/io/safetensors.hpp"
