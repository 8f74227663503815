#include <pybind11/pybind11.h>

#include <new>

#include "bindings.hpp"
#include "cpuformer/error.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "cpuformer C++ core (internal; use the cpuformer package)";
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cpuformer::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const cpuformer::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const cpuformer::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const cpuformer::StateError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const cpuformer::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError,
                      "out of memory: cpuformer could not allocate a buffer (std::bad_alloc); the input or config "
                      "sizes are too large for this machine");
    }
  });
  cfpy::bind_runtime(m);
  cfpy::bind_functional(m);
  cfpy::bind_attention(m);
  cfpy::bind_functional_embed_loss(m);
  cfpy::bind_nn(m);
  cfpy::bind_models(m);
  cfpy::bind_generation(m);
  cfpy::bind_models_bert_vit(m);
  cfpy::bind_optim(m);
  cfpy::bind_io(m);
  cfpy::bind_bench(m);
  cfpy::bind_longseq(m);
  cfpy::bind_bigbird(m);
}
