"""The debugger in a real terminal: tmux runs ``llamacpu debug``, we send keys and read the pane."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from debug_fixtures import make_trace, save_trace

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """One tmux server of our own (-L socket), so a user's sessions are never touched."""

    def __init__(self, command: list[str], size: tuple[int, int] = (130, 40), cwd: Path = ROOT) -> None:
        self.socket = f"llamacpu-test-{uuid.uuid4().hex[:8]}"
        env = " ".join(f"{k}={v}" for k, v in (("OMP_NUM_THREADS", "1"), ("TERM", "xterm-256color")))
        # -u: pytest's COLUMNS/LINES would otherwise override the pane's real size
        shell = f"env -u COLUMNS -u LINES {env} {' '.join(command)}; sleep 30"
        self.tmux("new-session", "-d", "-s", "t", "-c", str(cwd), "-x", str(size[0]), "-y", str(size[1]), shell)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def send(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "t", key)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-t", "t", "-p")

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the pane shows:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def trace_path(tmp_path) -> Path:
    return save_trace(make_trace(123, 456, wrong_step=5), tmp_path / "tmux.pt")


def test_debugger_in_tmux(trace_path):
    term = Tmux([sys.executable, "-m", "llamacpu.cli", "debug", str(trace_path),
                 "--breakpoints", str(trace_path.with_name("breakpoints.json"))])
    try:
        term.wait_for("memory (58 slots)")
        term.send("End")
        shown = term.wait_for("step 14/14")
        assert "HALT" in shown and "123 + 456 = 609 (WRONG" in shown
        term.send("Home", "x")
        term.wait_for("Break when")
        term.send("Enter")  # the first condition: OEU output differs from expected
        term.wait_for("breakpoint #1")
        term.send("c")
        shown = term.wait_for("step 6/14 | #1 OEU output differs from expected")
        assert "ADD(2, 5) = 10" in shown and "expected 7  WRONG" in shown
        term.send("?")
        term.wait_for("LlamaCPU debugger: keys")
        term.send("q")  # closes help (Escape followed at once by q would read as alt+q)
        deadline = time.monotonic() + 10
        while "LlamaCPU debugger: keys" in term.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        term.send("q")
        deadline = time.monotonic() + 10
        while "memory (58 slots)" in term.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "memory (58 slots)" not in term.screen()  # q quit the app
    finally:
        term.close()


def test_small_terminal_in_tmux(trace_path):
    term = Tmux([sys.executable, "-m", "llamacpu.cli", "debug", str(trace_path),
                 "--breakpoints", str(trace_path.with_name("breakpoints.json"))], size=(70, 20))
    try:
        term.wait_for("Terminal too small: 70x20")
    finally:
        term.close()
