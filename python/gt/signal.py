"""Signals: named scopes in the instruction stream, which sharding and compile configs refer to.

    with gt.signal.context("layer1"):
        h = layer1(x)

or ``gt.signal.enter("layer1")`` … ``gt.signal.exit()``. Scopes nest.
"""

import contextlib as _contextlib

from . import _gt


def enter(name):
    """Opens the scope ``name`` (close it with :func:`exit`)."""
    _gt.signal_enter(str(name))


def exit():  # noqa: A001  (the prototype's name)
    """Closes the innermost open scope."""
    _gt.signal_exit()


@_contextlib.contextmanager
def context(name):
    """The scope ``name`` for the duration of a ``with`` block."""
    enter(name)
    try:
        yield
    finally:
        exit()
