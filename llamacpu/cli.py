"""The ``llamacpu`` command.

Each command lives with the module it drives: a module exposes ``register(subparsers)``, which
adds its parsers with ``set_defaults(func=handler)``; a handler takes the parsed arguments and
returns an exit code. Bad input raises :class:`LlamaCPUError` and becomes one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from llamacpu.errors import LlamaCPUError

COMMAND_MODULES = ("llamacpu.cli_train", "llamacpu.cli_trace", "llamacpu.cli_asm", "llamacpu.cli_debug")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="llamacpu",
        description="A Llama-family LLM as the CPU of a differentiable computer: train it, run it, "
        "disassemble its memory and step through it in a debugger.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(show_path=False, show_time=False)])
    try:
        return int(args.func(args) or 0)
    except LlamaCPUError as err:
        print(f"llamacpu {args.command}: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `llamacpu disasm ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"llamacpu {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as err:
        if os.environ.get("LLAMACPU_DEBUG"):
            raise
        print(f"llamacpu {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
