"""Subcommands of the ``spinevcf`` console script, one module each.

Every module defines ``add_parser(subparsers)`` (registering its parser with
``set_defaults(func=run)``) and ``run(args) -> int``.
"""
