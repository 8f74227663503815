"""Where the wheel keeps the native library: headers, static library and the
CMake package (``find_package(cpuformer)``) under ``cpuformer/native/``."""
from __future__ import annotations

from pathlib import Path


def native_dir() -> Path:
    """The install prefix of the native library inside the package."""
    return Path(__file__).resolve().parent / "native"


def cmake_dir() -> Path:
    """The folder holding ``cpuformerConfig.cmake``: pass it as ``CMAKE_PREFIX_PATH``
    (or ``cpuformer_DIR``). FileNotFoundError when this copy of the package has no
    native library (a source checkout rather than an installed wheel)."""
    d = native_dir() / "lib" / "cmake" / "cpuformer"
    if not (d / "cpuformerConfig.cmake").is_file():
        raise FileNotFoundError(
            f"no CMake package at {d}: this copy of cpuformer was not installed from a wheel; "
            "build and install the native library with CMake instead (see README, 'Use from C++ and C')")
    return d
