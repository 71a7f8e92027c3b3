"""How the command line answers bad input: in one line on stderr and exit code 2, whether
argparse refuses an argument (it would print its usage block first), an argument type of ours does
(a seed), or a verb's library function raises one of USER_ERRORS."""

from __future__ import annotations

import argparse
from typing import NoReturn


class MissingExtra(RuntimeError):
    """A verb needs an optional extra this install lacks (e.g. Ray: `.[cluster]`)."""


USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ConnectionError, MissingExtra)
"""What the library raises for bad input: a bad value (deploy's ContractError and
json.JSONDecodeError are ValueErrors too), a missing or existing file, a robot or cluster that
does not answer, an extra not installed."""
MAX_SEED = 2**32 - 1
"""numpy's and gymnasium's seeds are whole numbers from 0 to this."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser (and, through add_subparsers, its verbs') whose errors are one line:
    `sim2real train: error: argument --steps: invalid int value: 'x'; see sim2real train --help`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}; see `{self.prog} --help`\n")


def one_line(message: object) -> str:
    """`message` on one line, whatever the values in it hold (a path or argument with a line
    break, a form feed, a record separator ...: every break str.splitlines knows)."""
    return " ".join(str(message).splitlines())


def seed_number(text: str) -> int:
    """A --seed: a whole number from 0 to MAX_SEED."""
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_SEED):
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, "
                                         f"got {text!r}")
    return int(text)


def frame_size(text: str) -> tuple[int, int]:
    """A camera's --camera-size: WIDTHxHEIGHT in pixels, e.g. 320x240."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) >= 8 and int(height) >= 8):
        raise argparse.ArgumentTypeError(f"a frame size is WIDTHxHEIGHT, each at least 8 "
                                         f"pixels (e.g. 320x240), got {text!r}")
    return int(width), int(height)


def show_defaults(verbs: argparse._SubParsersAction) -> None:
    """`--help` with each option's default, where it has one to tell (not None, not a flag's
    False) and its help does not already say it."""
    for sub in verbs.choices.values():
        for action in sub._actions:
            help_text = action.help or ""
            if action.option_strings and _tells(action.default) and "default" not in help_text:
                action.help = (help_text + " " if help_text else "") + "(default: %(default)s)"


def _tells(default: object) -> bool:
    """A default worth printing: not None, a flag's False or argparse's SUPPRESS (0 is)."""
    return not (default is None or default is False or default == argparse.SUPPRESS)
