"""What a new user sees: each command prints what was asked for, not the libraries' warnings;
``-v`` shows them; ``--version``, ``--help`` and input rejected before the model loads answer at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

from llamacpu.cli import main, quiet_libraries

from machine_fixtures import FIXTURE_RUN, run_cli, run_cli_all


def test_run_and_eval_print_no_library_noise(tmp_path: Path) -> None:
    results = run_cli_all({"run": ["run", "--run", str(FIXTURE_RUN), "12 + 34"],
                           "eval": ["eval", "--run", str(FIXTURE_RUN), "--digits", "1", "--trials", "2"]}, tmp_path)
    for name, result in results.items():
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", name
    assert results["run"].stdout.splitlines() == ["12 + 34 = 46  right"]
    assert "free-running accuracy" in results["eval"].stdout


def test_library_warnings_show_only_with_verbose() -> None:
    def shown(verbose: bool) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            quiet_libraries(verbose)
            warnings.warn_explicit("from a library", FutureWarning, "module.py", 1, module="torch.nn.modules.module")
            warnings.warn_explicit("from us", UserWarning, "trace.py", 1, module="llamacpu.trace")
        return [str(w.message) for w in seen]

    assert shown(False) == ["from us"]
    assert shown(True) == ["from a library", "from us"]


TORCH_FREE = {
    "--help": ["--help"],
    "--version": ["--version"],
    "train --help": ["train", "--help"],
    "run --help": ["run", "--help"],
    "debug --help": ["debug", "--help"],
    "run of a missing run": ["run", "--run", "no-such-run", "1 + 2"],
    "eval of a missing run": ["eval", "--run", "no-such-run"],
    "asm of a missing run": ["asm", "p.s", "--run", "no-such-run"],
    "eval with bad sizes": ["eval", "--run", "no-such-run", "--digits", "x"],
    "train into a non-run folder": ["train", "--run", "notes"],
}


def test_help_and_early_errors_do_not_import_torch(tmp_path: Path) -> None:
    """They answer in well under a second: importing torch alone takes 1.5 s on a laptop."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    probe = ("import sys\nfrom llamacpu.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
             "except SystemExit as exit:\n    code = exit.code\n"
             "print('torch imported' if 'torch' in sys.modules else 'no torch', code, file=sys.stderr)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, args in TORCH_FREE.items():
        result = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=60)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("no torch"), (name, result.stderr)
        assert last.split()[-1] in ("0", "2"), (name, last)
    start = time.perf_counter()
    result = run_cli(["--help"], cwd=tmp_path)
    assert result.returncode == 0 and time.perf_counter() - start < 1.0


def test_run_rejects_bad_problems_before_loading_the_model(monkeypatch, capsys) -> None:
    import llamacpu.checkpoint

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the problem was checked")

    monkeypatch.setattr(llamacpu.checkpoint, "load_machine", no_loading)
    for problem, needle in (("hello", "not an addition problem"), ("1" * 30 + " + 1", "30-digit addition needs")):
        assert main(["run", "--run", str(FIXTURE_RUN), problem]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
