"""The README documents every registered OP (its OP list is generated from the registry)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_readme_op_list_is_up_to_date():
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "op_table.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
