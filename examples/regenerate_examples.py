"""Regenerate generated_examples/ from the shipped example model, for every target.

Usage: python examples/regenerate_examples.py   (a test checks the folder is up to date)
"""

from __future__ import annotations

from pathlib import Path

import lstmgen
from lstmgen.targets import TARGETS, get_backend

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sine_lstm.keras"
NAME = "sine"


def available_targets() -> list[str]:
    found = []
    for target in TARGETS:
        try:
            get_backend(target)
        except lstmgen.LstmgenError:
            continue
        found.append(target)
    return found


def render_all(model: lstmgen.Model) -> dict[str, dict[str, str]]:
    return {t: get_backend(t).render(model, NAME) for t in available_targets()}


def main() -> None:
    model = lstmgen.load(EXAMPLE)
    for target in available_targets():
        for path in lstmgen.generate(
            model, target, NAME, ROOT / "generated_examples" / target, force=True
        ):
            print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
