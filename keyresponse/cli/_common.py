"""What every command shares: the one-line error exit and JSON printing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, ParamSpec, TypeVar

import typer

from keyresponse.errors import InputError, KeyResponseError

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit (2 for bad input, 1 for everything else)."""
    one_line = " ".join(str(message).split())
    typer.echo(f"keyresponse: error: {one_line}", err=True)
    raise typer.Exit(code)


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn our own errors into a one-line message and an exit code; let real bugs show a traceback."""
    try:
        yield
    except InputError as exc:
        fail(str(exc), 2)
    except KeyResponseError as exc:
        fail(str(exc), 1)


def print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run the command body inside `clean_errors`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with clean_errors():
            return fn(*args, **kwargs)

    return wrapper
