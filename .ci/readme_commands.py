"""Print the README's two set-up commands (the first two command lines of its first code block)."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def setup_commands(readme: Path) -> list[str]:
    """The first two non-comment lines of the README's first fenced code block."""
    match = re.search(r"```(?:bash|sh|console)?\n(.*?)```", readme.read_text(), re.S)
    lines = [
        ln for ln in (match.group(1).splitlines() if match else []) if ln.strip() and not ln.startswith("#")
    ]
    if len(lines) < 2:
        raise SystemExit(f"{readme}: its first code block does not hold the two set-up commands")
    return lines[:2]


if __name__ == "__main__":
    print("\n".join(setup_commands(Path(sys.argv[1]))))
