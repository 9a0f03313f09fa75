"""Errors the library raises for problems a user can fix.

The command line maps each class to an exit code and prints its message on one
line; the library itself never prints or exits.
"""
from __future__ import annotations


class RobustPathError(Exception):
    """Base class: a problem with the user's input, data, model or environment."""

    exit_code = 1


class UsageError(RobustPathError):
    """An option, name or value on the command line or in a config is wrong."""

    exit_code = 2


class DataError(RobustPathError):
    """Images, folders or manifests cannot be read or do not make a dataset."""


class ModelError(RobustPathError):
    """A model spec or checkpoint cannot be resolved or loaded."""


class OutputError(RobustPathError):
    """An output folder or file cannot be written."""
