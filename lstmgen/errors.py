"""Exception types: every user-facing failure is an LstmgenError with a one-line message."""

from __future__ import annotations


class LstmgenError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits with code 2."""


class ModelError(LstmgenError):
    """The model (or its IR) has something lstmgen cannot compile, or is inconsistent."""


class UnsupportedLayerError(ModelError):
    """A layer type or setting that no extractor maps to the IR."""


class MissingDependencyError(LstmgenError):
    """An optional package or tool (TensorFlow, cffi, a compiler, Octave) is not installed."""


class OutputError(LstmgenError):
    """Generated files could not be written where asked."""


class LimitError(ModelError):
    """A declared size over a resource limit (`lstmgen.limits`); the message says how to
    raise the limit."""


class FrontEndFault(ModelError):
    """An exception a front end did not anticipate while reading a model, turned into one
    error line at the front-end boundary (`lstmgen.boundary`). The fuzzers count it as a
    finding: a reader should say precisely what is wrong."""
