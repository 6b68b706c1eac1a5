"""The ``gar`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (called with the parsed
``argparse.Namespace``, returning the exit code). Exit codes: 0 ok, 2 bad input or usage, including
model files that are missing or not a usable checkpoint (one line on stderr, no traceback), 1 any
other failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from typing import Iterator, NoReturn, Sequence, TextIO

from gar_tool.errors import GARError, InputError, ModelError, SlowDtypeWarning

#: Sub-command modules, in the order ``gar --help`` lists them.
COMMAND_MODULES = ("describe_cmd", "ground_cmd", "eval_cmd", "tools_cmd", "serve_cmd", "mcp_cmd", "batch_cmd",
                   "train_cmd")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse's default prints usage)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    """The ``gar`` parser; ``plugins=False`` leaves out the commands of other packages (entry points)."""
    parser = _Parser(prog="gar", description="Region-grounded visual reasoning with GAR.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    if not plugins:
        return parser
    # Commands of other installed packages (``gar ask`` comes from ``agents``): entry points, so
    # that gar_tool never imports them itself.
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group="gar.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Our own warnings (e.g. a slow ``--dtype``) as one ``gar CMD: warning: ...`` line on stderr."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
            if issubclass(category, SlowDtypeWarning):
                print(f"gar {command}: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return {name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}


def main(argv: Sequence[str] | None = None) -> int:
    # This process decodes untrusted images: a decompression-bomb warning from an image plugin
    # becomes an error (reported as bad input), never a warning on stderr followed by the decode.
    warnings.filterwarnings("error", message=r".*could be decompression bomb DOS attack", category=RuntimeWarning)
    words = list(sys.argv[1:] if argv is None else argv)
    # A built-in command does not import the plugin commands (the planner's LangGraph stack):
    # ``gar mcp`` must answer its client within a second or two of starting.
    parser = build_parser(plugins=False)
    if not words or words[0] not in _commands(parser):
        parser = build_parser()
    args = parser.parse_args(words)
    try:
        with _one_line_warnings(args.command):
            code = args.func(args)
    except (InputError, ModelError) as exc:  # bad arguments, or model files that are not a usable checkpoint
        print(f"gar {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except GARError as exc:
        print(f"gar {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gar {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
