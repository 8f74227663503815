"""Command line: ``python -m cpuformer demo`` (more subcommands arrive with the models)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
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
    sub.add_parser("info", help="print build information")
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
