"""Entry point of the ``trustwire`` command.

Exit status: 0 on success, 2 on bad input, 1 on any other failure, 130 on Ctrl-C. Bad input
prints one ``trustwire: FILE: document N (KIND NS/NAME): FIELD: PROBLEM`` line per problem
(every problem of every document, local or reported by the server) and, when there are several,
a summary line last (``trustwire: 3 problems in 2 documents``). Other tools script
against this interface, so its flags and JSON fields only ever grow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from trustwire.errors import DocumentError, InvalidArgument, TrustwireError

from . import (
    enforcer_commands,
    flow_commands,
    identity_commands,
    live_commands,
    policy_commands,
    run_command,
    up_commands,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block and exits; we want one line and our exit code.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trustwire",
        description="Identity-based zero-trust network access control.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    policy_commands.register(sub)
    live_commands.register(sub)
    identity_commands.register(sub)
    flow_commands.register(sub)
    up_commands.register(sub)
    enforcer_commands.register(sub)
    run_command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status: int = args.handler(args)
        return status
    except UsageError as exc:
        print(f"{exc} (see 'trustwire --help')", file=sys.stderr)
        return EXIT_USAGE
    except DocumentError as exc:
        print_document_errors(exc)
        return EXIT_USAGE
    except InvalidArgument as exc:
        print(f"trustwire: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrustwireError as exc:
        print(f"trustwire: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `trustwire simulate | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return EXIT_OK


def print_document_errors(error: DocumentError) -> None:
    """Each problem on its own line; for several, the count last (a single problem prints
    exactly its one line, as scripts have always seen it)."""
    for problem in error.errors:
        print(f"trustwire: {problem.message}", file=sys.stderr)
    if error.omitted:
        print(f"trustwire: ... and {error.omitted} more", file=sys.stderr)
    if error.total > 1:
        print(f"trustwire: {error.summary}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
