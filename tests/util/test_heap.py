"""frozen_heap: long-lived objects are left out of collections during the block, collected after it."""
import gc
import weakref

from robustpath.util.heap import freeze_now, frozen_heap


class Node:
    pass


def cycle():
    node = Node()
    node.self = node  # only the cycle collector can free it
    return node


def test_objects_frozen_in_the_block_are_collected_after_it():
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        before = weakref.ref(cycle())  # garbage made after the freeze
        gc.collect()
        assert before() is None  # objects made inside the block are collected as usual
        node = cycle()
        alive = weakref.ref(node)
        freeze_now()
        del node
        gc.collect()
        assert alive() is not None and gc.get_freeze_count() > 0  # frozen: out of the collector's sight
        with frozen_heap():  # nested blocks keep the outer freeze
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None  # nothing leaked


def test_freeze_now_outside_a_block_does_nothing():
    freeze_now()
    assert gc.get_freeze_count() == 0
