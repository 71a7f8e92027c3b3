"""Counted nouns for the lines people read: "1 episode", "3 episodes", "2 bodies". Standard
library only: the robot's computer prints these too."""

from __future__ import annotations


def plural(noun: str) -> str:
    """`noun` for more than one (English's regular rules: the nouns we count follow them)."""
    if noun.endswith(("s", "x", "sh", "ch")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def counted(count: int, noun: str) -> str:
    """`count` and `noun`, singular for exactly one: counted(1, "episode") is "1 episode"."""
    return f"{count} {noun if count == 1 else plural(noun)}"
