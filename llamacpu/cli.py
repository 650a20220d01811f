"""The ``llamacpu`` command.

Each command lives with the module it drives: a module exposes ``register(subparsers)``, which
adds its parsers with ``set_defaults(func=handler)``; a handler takes the parsed arguments and
returns an exit code. Bad input raises :class:`LlamaCPUError` and becomes one line on stderr.

Nothing here imports torch: a handler imports what it needs, so ``--help``, ``--version`` and
input that fails a check before the model loads answer at once. Warnings and log lines of the
libraries underneath (transformers, the model hub, torch) are ours to silence, not the user's to
read: they show with ``-v``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
import warnings

from llamacpu.errors import LlamaCPUError

COMMAND_MODULES = ("llamacpu.cli_train", "llamacpu.cli_trace", "llamacpu.cli_asm", "llamacpu.cli_debug",
                   "llamacpu.cli_isa", "llamacpu.cli_embed")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="llamacpu",
        description="A Llama-family LLM as the CPU of a differentiable computer: train it, run it, "
        "disassemble its memory and step through it in a debugger.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug messages, and show the warnings of the libraries underneath")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def package_version() -> str:
    try:
        return importlib.metadata.version("llamacpu")
    except importlib.metadata.PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
        return "unknown (not installed)"


def quiet_libraries(verbose: bool) -> None:
    """Our log records on stderr (INFO, or DEBUG with -v); other libraries' warnings, and their
    log records below ERROR, only with -v. Called before transformers is imported: it reads its
    verbosity from the environment once."""
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    logging.basicConfig(format="%(message)s", handlers=[handler])  # no-op where a host set up logging
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.ERROR)
    for ours in ("llamacpu", "tui"):
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"(llamacpu|tui)(\.|$)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    quiet_libraries(args.verbose)
    if not getattr(args, "hub", False):  # the model hub is reached only when asked (train --hub)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return int(args.func(args) or 0)
    except LlamaCPUError as err:
        _report_bad_input(f"llamacpu {args.command}: {err}")
        return 2
    except BrokenPipeError:  # `llamacpu disasm ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if _is_main_process():
            print(f"llamacpu {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as err:
        if os.environ.get("LLAMACPU_DEBUG"):
            raise
        print(f"llamacpu {args.command}: {err}", file=sys.stderr)
        return 2


def _is_main_process() -> bool:
    from llamacpu.distributed import world_from_env

    try:
        return world_from_env().is_main
    except LlamaCPUError:  # a malformed RANK: speak
        return True


# How long a rank other than 0 waits before it exits on bad input: torchrun stops every rank as
# soon as one fails, and rank 0, which reports it, may be a moment behind.
REPORT_GRACE_S = 5.0


def _report_bad_input(line: str) -> None:
    """One line on stderr. Under torchrun every rank checks the same input and fails alike (the
    checks are made so: llamacpu/distributed.py), so rank 0 alone says it: one line, not N."""
    if _is_main_process():
        print(line, file=sys.stderr)
    else:
        import time

        time.sleep(REPORT_GRACE_S)


if __name__ == "__main__":
    sys.exit(main())
