"""Subcommands of the ``siplink`` command line: one module each, see :mod:`siplink.cli`."""
