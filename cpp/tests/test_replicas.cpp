// Pre-packed weights and replicas (nn/module.hpp): a replica shares its
// root's weights and computes what the root computes; a write to the root's
// values reaches both once mark_weights_changed() says so; a forward under
// no-grad on a module itself still drops what an earlier forward saved, so a
// backward after it raises (the Python bindings run such calls on replicas
// instead, which leaves the root's saved state alone).
#include <cstring>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/nn/transformer.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/runtime/rng.hpp"

using namespace cpuformer;

namespace {

TransformerLayerOptions opts() {
  TransformerLayerOptions o;
  o.d_model = 64;
  o.nhead = 4;
  o.dim_feedforward = 128;
  o.dropout = 0.0f;
  o.activation = "gelu";
  return o;
}

Tensor input(uint64_t key) {
  Tensor t = Tensor::empty({2, 9, 64});
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 2.0f * rng_uniform(key, static_cast<uint64_t>(i)) - 1.0f;
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

}  // namespace

CF_TEST(replica_shares_weights_and_sees_their_changes) {
  TransformerEncoderLayer root(opts());
  root.flatten_parameters();
  root.eval();
  CHECK(root.acquire_replica() == nullptr);  // no factory yet
  root.set_twin_factory([] { return std::make_unique<TransformerEncoderLayer>(opts()); });
  const uint64_t before = get_rng_state().counter;
  std::unique_ptr<Module> r = root.acquire_replica();
  CHECK(r != nullptr && root.replicas_built() == 1);
  CHECK(get_rng_state().counter == before);  // building a replica draws no random numbers
  auto& rep = static_cast<TransformerEncoderLayer&>(*r);
  CHECK(!rep.training());
  const Tensor x = input(7);
  const NoGradGuard no_grad;
  const Tensor want = root.forward(x, AttentionMask());
  CHECK(same(rep.forward(x, AttentionMask()), want));
  // Change a weight in place (as a C++ caller would) and say so.
  Parameter* w = root.named_parameters()[0].second;
  for (int64_t i = 0; i < w->value.numel(); ++i) w->value.data()[i] *= -1.0f;
  root.mark_weights_changed();
  const Tensor changed = root.forward(x, AttentionMask());
  CHECK(!same(changed, want));
  CHECK(same(rep.forward(x, AttentionMask()), changed));
  root.release_replica(std::move(r));
  CHECK(root.acquire_replica() != nullptr && root.replicas_built() == 1);  // reused, not rebuilt
}

CF_TEST(no_grad_forward_on_the_module_itself_drops_the_saved_state) {
  TransformerEncoderLayer layer(opts());
  layer.flatten_parameters();
  const Tensor x = input(3);
  const Tensor y = layer.forward(x, AttentionMask());
  {
    const NoGradGuard no_grad;
    layer.forward(x, AttentionMask());
  }
  CHECK_THROWS(StateError, layer.backward(y));
}

int main() { return cftest::run_all(); }
