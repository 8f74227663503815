// Checkpoint I/O: safetensors save/load. Glue only: argument checks, NumPy <->
// Tensor, the GIL released around file I/O, FileError -> OSError.
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/io/checkpoint.hpp"
#include "cpuformer/io/safetensors.hpp"

namespace cfpy {

namespace {

// str, bytes or os.PathLike -> the path's bytes (os.fsencode, so undecodable
// file names round-trip).
std::string path_arg(py::handle path) {
  py::object encoded;
  try {
    encoded = py::module_::import("os").attr("fsencode")(path);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    throw cpuformer::TypeError(cpuformer::str_cat("path: expected str, bytes or os.PathLike, got ",
                                                  std::string(py::str(py::type::of(path).attr("__name__")))));
  }
  return encoded.cast<std::string>();
}

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

// str -> UTF-8 bytes. Lone surrogates pass through as invalid UTF-8, which the
// core rejects with a ValueError naming the string.
std::string utf8_arg(py::handle s) {
  PyObject* bytes = PyUnicode_AsEncodedString(s.ptr(), "utf-8", "surrogatepass");
  if (!bytes) throw py::error_already_set();
  return py::reinterpret_steal<py::bytes>(bytes).cast<std::string>();
}

// Raises OSError(errno, reason) with .filename set, so Python picks the
// subclass (FileNotFoundError, IsADirectoryError, PermissionError, ...) and
// prints "[Errno 2] cannot open for reading: No such file or directory: 'x'".
[[noreturn]] void raise_os_error(const cpuformer::FileError& e, py::handle path) {
  py::object exc = py::reinterpret_borrow<py::object>(PyExc_OSError)(e.code, e.reason);
  exc.attr("filename") = path;
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

std::vector<std::pair<std::string, std::string>> metadata_arg(py::handle metadata) {
  std::vector<std::pair<std::string, std::string>> out;
  if (metadata.is_none()) return out;
  if (!py::hasattr(metadata, "items"))
    throw cpuformer::TypeError(cpuformer::str_cat("metadata: expected a dict of str -> str, got ", type_name(metadata)));
  for (py::handle item : metadata.attr("items")()) {
    auto kv = py::reinterpret_borrow<py::sequence>(item);
    if (!py::isinstance<py::str>(kv[0]) || !py::isinstance<py::str>(kv[1]))
      throw cpuformer::TypeError(cpuformer::str_cat("metadata: keys and values must be str, got ", type_name(kv[0]),
                                                    " -> ", type_name(kv[1])));
    out.emplace_back(utf8_arg(kv[0]), utf8_arg(kv[1]));
  }
  return out;
}

std::vector<cpuformer::NamedTensor> tensors_arg(py::handle tensors) {
  if (!py::hasattr(tensors, "items"))
    throw cpuformer::TypeError(
        cpuformer::str_cat("tensors: expected a dict of name -> array, got ", type_name(tensors)));
  std::vector<cpuformer::NamedTensor> out;
  for (py::handle item : tensors.attr("items")()) {
    auto kv = py::reinterpret_borrow<py::sequence>(item);
    if (!py::isinstance<py::str>(kv[0]))
      throw cpuformer::TypeError(
          cpuformer::str_cat("tensors: names must be str, got ", type_name(kv[0]), " ", std::string(py::repr(kv[0]))));
    std::string name = utf8_arg(kv[0]);
    const std::string what = "tensors['" + name + "']";
    out.push_back({std::move(name), to_tensor(kv[1], what.c_str())});
  }
  return out;
}

py::dict metadata_dict(const cpuformer::Metadata& metadata) {
  py::dict d;
  for (const auto& [k, v] : metadata) d[py::str(k)] = py::str(v);
  return d;
}

}  // namespace

void bind_io(py::module_& m) {
  m.def(
      "save_safetensors",
      [](py::object path, py::object tensors, py::object metadata) {
        const std::string p = path_arg(path);
        std::vector<cpuformer::NamedTensor> ts = tensors_arg(tensors);
        auto meta = metadata_arg(metadata);
        try {
          py::gil_scoped_release release;
          cpuformer::save_safetensors(p, ts, meta);
        } catch (const cpuformer::FileError& e) {
          raise_os_error(e, path);
        }
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = py::none(),
      "Write tensors (dict name -> array, stored as float32) and str metadata atomically.");

  m.def(
      "load_safetensors",
      [](py::object path) {
        const std::string p = path_arg(path);
        cpuformer::SafetensorsContent content;
        try {
          py::gil_scoped_release release;
          content = cpuformer::load_safetensors(p);
        } catch (const cpuformer::FileError& e) {
          raise_os_error(e, path);
        }
        py::dict tensors;
        for (const cpuformer::NamedTensor& t : content.tensors) tensors[py::str(t.name)] = to_numpy(t.value);
        return py::make_tuple(tensors, metadata_dict(content.metadata));
      },
      py::arg("path"), "Read every tensor (as float32) and the metadata: (dict name -> ndarray, dict str -> str).");

  m.def(
      "load_model",
      [](py::object path) {
        const std::string p = path_arg(path);
        cpuformer::LoadedModel loaded;
        try {
          py::gil_scoped_release release;
          loaded = cpuformer::load_model(p);
        } catch (const cpuformer::FileError& e) {
          raise_os_error(e, path);
        }
        std::shared_ptr<cpuformer::Module> module(std::move(loaded.module));
        return py::make_tuple(loaded.class_name, loaded.config.dump(), module);
      },
      py::arg("path"),
      "Read a checkpoint of any precision with the C++ loader: (class name, config JSON, model core).");

  m.def(
      "save_model",
      [](cpuformer::Module& model, py::object path) {
        const std::string p = path_arg(path);
        try {
          py::gil_scoped_release release;
          std::lock_guard<std::shared_mutex> guard(model.call_mutex());
          cpuformer::save_model(p, model);
        } catch (const cpuformer::FileError& e) {
          raise_os_error(e, path);
        }
      },
      py::arg("model"), py::arg("path"), "Write a model core (any precision) with the C++ writer.");

  m.def(
      "read_safetensors_metadata",
      [](py::object path) {
        const std::string p = path_arg(path);
        cpuformer::Metadata metadata;
        try {
          py::gil_scoped_release release;
          metadata = cpuformer::read_safetensors_metadata(p);
        } catch (const cpuformer::FileError& e) {
          raise_os_error(e, path);
        }
        return metadata_dict(metadata);
      },
      py::arg("path"), "Read only the header and return the metadata (dict str -> str).");
}

}  // namespace cfpy
