"""Identifiers in generated code: validating `--name` and sanitising layer names.

One rule set serves C, Python and MATLAB so that the same model gets the same names in
every backend: ASCII letters, digits and `_`, starting with a letter, not a keyword of any
of the three languages, at most 40 characters.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import LstmgenError

C_KEYWORDS = set(
    """auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while _Bool _Complex _Imaginary bool true false NULL
class delete new this template typename namespace operator private public protected virtual
friend using throw try catch explicit mutable export asm nullptr""".split()
)
PYTHON_KEYWORDS = set(
    """False None True and as assert async await break class continue def del
elif else except finally for from global if import in is lambda nonlocal not or pass raise
return try while with yield match case math array""".split()
)
MATLAB_KEYWORDS = set(
    """break case catch classdef continue else elseif end for function global
if otherwise parfor persistent return spmd switch try while single double zeros ones exp
tanh max min abs sum""".split()
)
RESERVED = C_KEYWORDS | PYTHON_KEYWORDS | MATLAB_KEYWORDS
MAX_LENGTH = 40
_VALID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def validate_model_name(name: str) -> str:
    """Return `name` if it can prefix every generated identifier, else raise."""
    if not isinstance(name, str) or not _VALID.match(name) or len(name) > MAX_LENGTH:
        raise LstmgenError(
            f"--name {name!r} must start with a letter, use only ASCII letters, "
            f"digits and '_', and be at most {MAX_LENGTH} characters"
        )
    if name in RESERVED or name.lower() in RESERVED:
        raise LstmgenError(
            f"--name {name!r} is a keyword or builtin in C, Python or MATLAB; choose another name"
        )
    return name


def sanitize(raw: str) -> str:
    """A lower-case identifier fragment made from any layer name."""
    text = unicodedata.normalize("NFKD", str(raw)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not text:
        text = "layer"
    if text[0].isdigit():
        text = "l" + text
    if text in RESERVED:
        text += "_"
    return text[:MAX_LENGTH]


def unique_name(base: str, seen: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... : the first not in `seen` (which it joins)."""
    candidate, n = base, 1
    while candidate in seen:
        n += 1
        candidate = f"{base[: MAX_LENGTH - 4]}_{n}"
    seen.add(candidate)
    return candidate


def unique_identifiers(raw_names: list[str]) -> list[str]:
    """Sanitised names, made unique by a numeric suffix where two collide."""
    seen: set[str] = set()
    return [unique_name(sanitize(raw), seen) for raw in raw_names]
