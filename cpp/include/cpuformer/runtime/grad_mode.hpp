// Grad mode: whether forward passes save what backward needs. Thread-local
// and on by default; NoGradGuard turns it off for a scope (Python:
// `with cpuformer.no_grad():`). Without it, forward keeps no activations:
// inference uses less memory, and backward afterwards is a StateError.
#pragma once

namespace cpuformer {

bool grad_enabled();
void set_grad_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace cpuformer
