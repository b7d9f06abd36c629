"""Small helpers the benchmark scripts share: writing their figures as JSON for run_all.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def write_json(path: str | None, result: Any) -> None:
    """Write `result` as JSON to `path` ('-': stdout; None: nowhere)."""
    if path is None:
        return
    text = json.dumps(result, indent=2, default=str)
    if path == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(path).write_text(text + "\n", encoding="utf-8")
