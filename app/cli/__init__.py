"""The ``nnwatch`` command line."""

from app.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
