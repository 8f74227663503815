"""Command line: ``python -m cpuformer demo | info | bench``."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path


def _load_bench():
    """The harness: ``cpuformer.bench`` in an installed wheel; in a source
    tree (``PYTHONPATH=python``) the repository's top-level ``bench/``, loaded
    under the same name."""
    name = f"{__package__}.bench"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
    init = Path(__file__).resolve().parents[2] / "bench" / "__init__.py"
    if not init.is_file():
        raise SystemExit("python -m cpuformer bench: the benchmark harness is not installed with this copy of "
                         "cpuformer (expected the cpuformer.bench package or a source tree's bench/ directory)")
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "bench":  # the harness owns its own options
        return _load_bench().main(argv[1:], prog="python -m cpuformer bench")
    parser = argparse.ArgumentParser(prog="python -m cpuformer", description="cpuformer command line")
    parser.add_argument("--cmake-dir", action="store_true",
                        help="print the folder to pass as CMAKE_PREFIX_PATH to find_package(cpuformer) and exit")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="train a small model and show what it learned")
    demo.add_argument("--task", default="gpt", choices=["gpt", "seq2seq", "bert", "vit"],
                      help="which model family to show (default: a character-level GPT)")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: task-specific)")
    demo.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    demo.add_argument("--out", default=None, help="checkpoint path to write")
    demo.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                      help="training precision (gpt task; bf16: cpuformer.autocast, float32 master weights)")
    sub.add_parser("info", help="print build information")
    sub.add_parser("bench", help="benchmark against PyTorch (see `python -m cpuformer bench --help`)")
    args = parser.parse_args(argv)
    if args.cmake_dir:
        from ._cmake import cmake_dir

        try:
            print(cmake_dir())
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(args)
    if args.command == "info":
        import cpuformer

        for k, v in cpuformer.build_info().items():
            print(f"{k}: {v}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
