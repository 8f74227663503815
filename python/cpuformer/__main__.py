"""Command line: ``python -m cpuformer demo | info | bench | generate``."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import List, Optional


def _load_bench() -> ModuleType:
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
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: Optional[List[str]] = None) -> int:
    """The ``python -m cpuformer`` / ``cpuformer`` command line.

    Args:
        argv: the arguments after the program name (None: ``sys.argv[1:]``).

    Returns:
        The exit status.

    Raises:
        SystemExit: on ``--help`` or bad arguments (argparse).
    """
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
    gen = sub.add_parser("generate", help="generate text with a local Hugging Face GPT-2 directory, printing "
                         "tokens as they are produced")
    gen.add_argument("dir", help="model directory: config.json, model.safetensors (or pytorch_model.bin), "
                     "tokenizer.json")
    gen.add_argument("prompt", help="the text to continue")
    gen.add_argument("--max-new-tokens", type=int, default=50, help="new tokens at most (default 50)")
    gen.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    gen.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens")
    gen.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass in (0, 1]")
    gen.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (default 1.0)")
    gen.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")
    gen.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "int8"],
                     help="weights (bfloat16 / int8 quantize while loading; default float32)")
    gen.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    gen.add_argument("--no-prompt", action="store_true", help="print only the new text")
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
    if args.command == "generate":
        return _generate(args)
    if args.command == "info":
        import cpuformer

        for k, v in cpuformer.build_info().items():
            print(f"{k}: {v}")
        return 0
    parser.print_help()
    return 0


def _generate(args: argparse.Namespace) -> int:
    import cpuformer

    if args.threads is not None:
        cpuformer.set_num_threads(args.threads)
    try:
        gen = cpuformer.TextGenerator(args.dir, dtype=args.dtype)
        pieces = gen.stream(args.prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                            top_p=args.top_p, seed=args.seed, repetition_penalty=args.repetition_penalty)
        if not args.no_prompt:
            print(args.prompt, end="", flush=True)
        for piece in pieces:
            print(piece, end="", flush=True)
    except (ValueError, TypeError, IndexError, OSError, ImportError, NotImplementedError) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 2
    print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
