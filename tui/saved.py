"""Breakpoints kept per trace between debugger sessions, in one JSON file.

    {"version": 1, "traces": {"/abs/path/run/trace.pt": [{"kind": "address", "addr": 28,
                                                          "threshold": null, "enabled": true}]}}

The default file is ``$XDG_STATE_HOME/llamacpu/breakpoints.json`` (``~/.local/state/...``);
``llamacpu debug --breakpoints FILE`` names another. A trace is known by its resolved path. A
file that cannot be read is reported and left alone: the session starts without saved
breakpoints rather than failing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tui.session import Breakpoint

VERSION = 1


def default_path() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "llamacpu" / "breakpoints.json"


class SavedBreakpoints:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None  # why the file could not be read, if it could not

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": VERSION, "traces": {}}
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("traces"), dict):
                raise ValueError("no 'traces' object")
        except (OSError, ValueError) as err:
            self.problem = f"{self.path}: saved breakpoints not read ({err})"
            return {"version": VERSION, "traces": {}}
        return data

    def load(self, trace: Path) -> list[Breakpoint]:
        """The breakpoints saved for this trace, numbered from 1 (entries that do not read as
        breakpoints are skipped)."""
        out: list[Breakpoint] = []
        for raw in self._read()["traces"].get(_key(trace), []):
            try:
                out.append(Breakpoint.from_dict(len(out) + 1, raw))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return out

    def save(self, trace: Path, breakpoints: list[Breakpoint]) -> None:
        """Replace this trace's entry (an empty list removes it), written atomically."""
        if self.problem:  # never overwrite a file we could not read
            return
        data = self._read()
        if self.problem:
            return
        if breakpoints:
            data["traces"][_key(trace)] = [b.to_dict() for b in breakpoints]
        else:
            data["traces"].pop(_key(trace), None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)


def _key(trace: Path) -> str:
    return str(Path(trace).resolve())
