"""The prototype's client namespace: ``from gt.client import nn`` is :mod:`gt.nn`."""

from .. import nn  # noqa: F401
