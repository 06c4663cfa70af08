"""The OP registry imports an OP's own module on first use (one OP per file, named as the OP)."""

from __future__ import annotations

import subprocess
import sys

from dj_ops.core.registry import load_all_ops, op_class, op_modules


def test_an_op_is_found_by_its_module_alone():
    code = ("import sys; from dj_ops.core.registry import op_class; "
            "cls = op_class('text_length_filter'); "
            "print(cls.__module__, sorted(m for m in sys.modules if m.startswith('dj_ops.ops.filter.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "dj_ops.ops.filter.text_length_filter"
    assert "'dj_ops.ops.filter.words_num_filter'" not in out[1]  # nothing else was imported


def test_unknown_names_and_every_module():
    assert op_class("no_such_op_anywhere") is None
    assert op_class("../etc") is None
    ops = load_all_ops()
    assert len(ops) >= 47 and all(op_class(name) is cls for name, cls in ops.items())
    modules = op_modules()
    assert all(cls.__module__ in modules for cls in ops.values() if cls.__module__.startswith("dj_ops."))


def test_every_op_lives_in_a_module_named_after_it():
    """What lets the registry import one OP's module alone (and README's "Adding an OP" says)."""
    misplaced = {name: cls.__module__ for name, cls in load_all_ops().items()
                 if cls.__module__.startswith("dj_ops.") and cls.__module__.rsplit(".", 1)[-1] != name}
    assert misplaced == {}
