"""A user's key remapping: ``~/.config/llamacpu/keys.toml`` (or .json, or $LLAMACPU_KEYS).

    [keys]
    step = "j,right"     # binding id = comma-separated keys, as Textual names them
    back = "k,left"

The binding ids are listed by ``?`` (help) and in docs/debugger.md.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from llamacpu.errors import LlamaCPUError


class KeysError(LlamaCPUError):
    """A key configuration file that cannot be used."""


def default_path() -> Path:
    if os.environ.get("LLAMACPU_KEYS"):
        return Path(os.environ["LLAMACPU_KEYS"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    toml = base / "llamacpu" / "keys.toml"
    return toml if toml.exists() or not (base / "llamacpu" / "keys.json").exists() else base / "llamacpu" / "keys.json"


def load_keymap(path: Path | None, known: set[str]) -> dict[str, str]:
    """Binding id -> keys. A missing default file is no remapping; a named missing file is an error."""
    explicit = path is not None
    path = path or default_path()
    if not path.exists():
        if explicit:
            raise KeysError(f"{path}: no such key file")
        return {}
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as err:
        raise KeysError(f"{path}: not a key file ({err})") from None
    keys = data.get("keys", data) if isinstance(data, dict) else None
    if not isinstance(keys, dict) or not all(isinstance(v, str) and v for v in keys.values()):
        raise KeysError(f"{path}: expected a [keys] table of binding id = \"key,key\"")
    unknown = sorted(set(keys) - known)
    if unknown:
        raise KeysError(f"{path}: unknown binding ids {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return {k: v.replace(" ", "") for k, v in keys.items()}
