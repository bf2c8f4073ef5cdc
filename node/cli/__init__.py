"""The `stateless` command line: `node start`, `keys`, `admin`, `client`.

`main(argv)` runs it in-process and returns the exit code, so tests and scripts can call it directly;
the console script `stateless` is `node.cli:main`.
"""

from node.cli._main import build_parser, main
from node.cli._output import CliError, UsageError

__all__ = ["CliError", "UsageError", "build_parser", "main"]
