"""frozen_heap: the collector skips the objects alive on entry; they return to it at the next
frozen_heap (or thaw), and garbage among them is collected then."""

from __future__ import annotations

import gc
import weakref

import pytest

from dj_ops.core.heap import frozen_heap, thaw


@pytest.fixture(autouse=True)
def unfrozen():
    thaw()
    assert gc.get_freeze_count() == 0
    yield
    thaw()
    gc.unfreeze()


class Node:
    def __init__(self):
        self.me = self  # a cycle: only the cyclic collector frees it


def test_nested_uses_freeze_more_and_the_heap_stays_frozen_until_thawed():
    before = Node()
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        made_inside = [Node() for _ in range(100)]
        with frozen_heap():
            assert gc.get_freeze_count() >= frozen + len(made_inside)
        assert gc.get_freeze_count() > 0  # the inner exit leaves the heap frozen
    assert gc.get_freeze_count() > 0  # and so does the outer one: no full collection after the work
    gone = weakref.ref(before)
    del before
    gc.collect()
    assert gone() is not None  # frozen garbage waits ...
    thaw()
    assert gc.get_freeze_count() == 0 and gone() is None  # ... until the heap is thawed


def test_the_next_work_frees_what_the_last_one_left():
    with frozen_heap():
        left = Node()
    gone = weakref.ref(left)
    del left
    with frozen_heap():
        assert gone() is None


def test_garbage_made_during_the_work_is_collected_while_frozen():
    with frozen_heap():
        gone = weakref.ref(Node())
        gc.collect()
        assert gone() is None


def test_a_heap_frozen_elsewhere_is_left_as_it_is():
    gc.freeze()
    count = gc.get_freeze_count()
    with frozen_heap():
        Node()
        assert gc.get_freeze_count() == count
    assert gc.get_freeze_count() == count
    thaw()
    assert gc.get_freeze_count() == count
