"""What a new user sees: each command prints what was asked for, not the libraries' warnings;
``-v`` shows them; ``--version``, ``--help`` and input rejected before the model loads answer at once."""

from __future__ import annotations

import warnings
from pathlib import Path

from llamacpu.cli import quiet_libraries

from machine_fixtures import FIXTURE_RUN, run_cli_all


def test_run_and_eval_print_no_library_noise(tmp_path: Path) -> None:
    results = run_cli_all({"run": ["run", "--run", str(FIXTURE_RUN), "12 + 34"],
                           "eval": ["eval", "--run", str(FIXTURE_RUN), "--digits", "1", "--trials", "2"]}, tmp_path)
    for name, result in results.items():
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", name
    lines = results["run"].stdout.splitlines()
    assert lines[0] == "12 + 34 = 46  right"
    assert all(line.startswith("trace: ") for line in lines[1:])
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
