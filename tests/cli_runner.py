"""`python -m core ARGS` run inside the test process: `run_cli(...)` calls `core.cli.main`
with the arguments, the stdin text and the environment a subprocess would get, and returns
what `subprocess.run(..., capture_output=True, text=True)` would (`.returncode`, `.stdout`,
`.stderr`), without paying a new interpreter and its imports (~2-3 s) per call.

What differs from a real process, on purpose:
- an exception that escapes `main` (a crash) is raised into the test with its traceback,
  instead of becoming exit code 1 and a traceback on stderr;
- engines the command leaves open are not closed by a process exit (they close when
  collected).
Tests that need a real process (signals, a killed or starved process, another OS user, a
real pipe, the long-running services) keep `subprocess`; test_cli.py keeps one that runs the
real `python -m core` entry point.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliRun:
    """The fields of `subprocess.CompletedProcess` the tests read."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environ(changes: Mapping[str, str | None]) -> Iterator[None]:
    """os.environ with `changes` applied (None removes the variable), restored after."""
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _own_logging() -> Iterator[None]:
    """The root logger as a fresh process has it (no handlers: warnings reach stderr through
    logging's last resort, and a service's `logging.basicConfig` writes to the captured
    stderr); its handlers and level restored after, so nothing accumulates between runs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = []
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers = handlers
        root.setLevel(level)


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved


def _exit_code(code: object, stderr: io.StringIO) -> int:
    """The process exit status `sys.exit(code)` gives (argparse errors exit 2)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stderr)
    return 1


def run_cli(*args: str | Path, stdin: str = "",
            env: Mapping[str, str | None] | None = None) -> CliRun:
    """`python -m core *args` run from the project root, with `stdin` as its input (not a
    terminal) and `env` applied over this process's environment (None unsets a variable)."""
    from core.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environ(env or {}))
        stack.enter_context(contextlib.chdir(ROOT))
        stack.enter_context(_own_logging())
        stack.enter_context(_stdin(stdin))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = main(argv)
        except SystemExit as exc:
            code = _exit_code(exc.code, err)
    return CliRun(argv, code, out.getvalue(), err.getvalue())
