"""scripts/code_metrics.py on a tiny synthetic checkout: each metric counts what it should."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "code_metrics.py"


def _write(root: Path, relpath: str, text: str) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _synthetic_checkout(root: Path) -> None:
    """hand_ik/{a,b} import each other at top level; hand_ik/c has a function import of
    hand_ik.a, a 61-line function, a FooConfig dataclass and one CLI flag; hand_ik/big is 401
    lines."""
    _write(root, "hand_ik/__init__.py", "")
    _write(root, "hand_ik/a.py", "from hand_ik import b\n")
    _write(root, "hand_ik/b.py", "from . import a\n")
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    _write(root, "hand_ik/c.py", (
        "import argparse\n"
        "from dataclasses import dataclass\n\n\n"
        "@dataclass\nclass FooConfig:\n    size: int = 1\n\n\n"
        "def long():\n    import hand_ik.a\n" + body + "\n\n"
        "def cli():\n    p = argparse.ArgumentParser()\n    p.add_argument('--x')\n"
        "    p.add_argument('pos')\n"
    ))
    _write(root, "hand_ik/big.py", "".join(f"v{i} = {i}\n" for i in range(401)))


def test_metrics_of_a_synthetic_checkout(tmp_path):
    _synthetic_checkout(tmp_path)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    m = json.loads(out)

    assert m["lines_per_package"]["hand_ik"] == 2 + 401 + sum(
        1 for line in (tmp_path / "hand_ik/c.py").read_text().splitlines() if line.strip())
    assert m["files_over_400_lines"] == [["hand_ik/big.py", 401]]
    assert m["functions_over_60_lines"] == [["long", "hand_ik/c.py", 61]]
    assert m["first_party_imports_in_functions"] == {"count": 1, "per_file": {"hand_ik/c.py": 1}}
    cycles = m["import_cycles"]
    assert cycles["top_level"] == {"count": 1, "components": [["hand_ik.a", "hand_ik.b"]]}
    assert cycles["all_imports"]["count"] == 1
    assert m["config_dataclasses"] == {"count": 1, "names": ["hand_ik.c.FooConfig"]}
    assert m["cli_flags"] == {"count": 1, "per_file": {"hand_ik/c.py": 1}}
    assert m["ros_parameters"]["static_declare_calls"] == 0
