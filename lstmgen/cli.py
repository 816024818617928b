"""The `lstmgen` command line: inspect, generate, verify, save-ir.

Every failure ends as one line `lstmgen: error: ...` on stderr and exit code 2, never a
traceback (`--debug` shows it): user mistakes and bad files as lstmgen's own errors,
anything else as an internal error (`lstmgen.boundary`). `--limit NAME=VALUE` raises a
resource limit for this run (`lstmgen.limits`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence

from . import __version__, console, limits
from .boundary import OneLineParser, error_line, internal_line
from .errors import LstmgenError
from .targets import TARGETS

EXIT_USAGE = 2
EXIT_MISMATCH = 1


def _console_options() -> OneLineParser:
    """--quiet and --verbose, taken by every command."""
    common = OneLineParser(add_help=False)
    group = common.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress lines on stderr (errors still show)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="let the frameworks print their own log lines (TensorFlow's are hidden by default)",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="lstmgen",
        description="Trained LSTM models to standalone "
        "C99, pure-Python, numpy and MATLAB code, verified against the "
        "framework.",
    )
    p.add_argument("--version", action="version", version=f"lstmgen {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    common = [_console_options()]

    s = sub.add_parser(
        "inspect", help="layers, shapes, parameters, weight mapping, memory", parents=common
    )
    s.add_argument("model")
    _load_options_args(s)
    s.add_argument(
        "--target",
        choices=sorted(TARGETS),
        help="also the target's own memory report (e.g. c: flash/RAM per layer)",
    )
    _backend_options(s)

    s = sub.add_parser("generate", help="write inference code for a target", parents=common)
    s.add_argument("model")
    _load_options_args(s)
    s.add_argument("--target", choices=sorted(TARGETS), default="c", help="(default: c)")
    s.add_argument(
        "--name",
        default="model",
        help="prefix of every generated identifier and file name "
        "(default: model, e.g. model.c and model.h)",
    )
    s.add_argument(
        "--out",
        default=".",
        help="output folder, created if missing (default: the current folder)",
    )
    s.add_argument(
        "--force", action="store_true", help="overwrite files in --out that lstmgen did not write"
    )
    _backend_options(s)

    s = sub.add_parser(
        "verify", help="run the generated code against the framework", parents=common
    )
    s.add_argument("model")
    _load_options_args(s)
    s.add_argument("--target", choices=sorted(TARGETS), default="c", help="(default: c)")
    s.add_argument("--inputs", help=".npy file of shape [N, T, D] (default: seeded random)")
    s.add_argument(
        "--sequences", type=int, default=16, help="random sequences to compare (default: 16)"
    )
    s.add_argument("--timesteps", type=int, help="default: the model's own T, else 20")
    s.add_argument("--seed", type=int, default=0, help="of the random sequences (default: 0)")
    s.add_argument(
        "--report",
        metavar="FILE.html",
        help="also write a self-contained HTML page: the outputs of framework and generated "
        "code, the errors, the layers and the memory",
    )
    s.add_argument(
        "--atol",
        type=float,
        help="largest max-abs error that passes (default 1e-5, or the target's "
        "documented tolerance for a quantized build)",
    )
    _backend_options(s, verifying=True)

    s = sub.add_parser("save-ir", help="write the model's IR to an .npz file", parents=common)
    s.add_argument("model")
    _load_options_args(s)
    s.add_argument("output")
    for command in sub.choices.values():
        _boundary_args(command)
    return p


def _boundary_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="raise a resource limit for untrusted files (see SECURITY.md), e.g. "
        "--limit parameters=100000000; repeatable",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, also print the Python traceback (and show Python warnings)",
    )


BACKEND_OPTIONS = ("precision", "quantize", "math", "selftest", "arduino", "calibration")


def _backend_options(parser: argparse.ArgumentParser, verifying: bool = False) -> None:
    parser.add_argument(
        "--precision",
        choices=["single", "double"],
        help="number type of the generated code (matlab, numpy; default single)",
    )
    parser.add_argument(
        "--quantize",
        choices=["int8", "int16", "fixed16", "int8-full"],
        help="c: int8/int16 weights with float math, or fixed16: all-integer "
        "Q-format for cores without an FPU, or int8-full: TensorFlow Lite's full-integer "
        "scheme, bit-exact with TensorFlow Lite Micro",
    )
    parser.add_argument(
        "--calibration",
        help="c --quantize int8-full of a float model: .npy of typical inputs [N, T, D]",
    )
    parser.add_argument(
        "--math", choices=["libm", "builtin"], help="c: builtin = own exp/tanh/sigmoid, no libm"
    )
    parser.add_argument(
        "--selftest",
        action="store_true",
        default=None,
        help="c: generate the build with NAME_selftest.c, the on-device check against the "
        "framework's outputs (verify checks NAME.c on this machine; the self-test runs on "
        "the device)"
        if verifying
        else "c: also write NAME_selftest.c, which checks the port on target "
        "against the framework's outputs",
    )
    parser.add_argument(
        "--arduino",
        action="store_true",
        default=None,
        help="c: generate the build as an Arduino library (changes nothing verify runs)"
        if verifying
        else "c: also write an Arduino library.properties",
    )


def _options(args: argparse.Namespace) -> dict:
    """Backend options the user actually gave (each backend checks what it accepts)."""
    given = {name: getattr(args, name, None) for name in BACKEND_OPTIONS}
    return {k: v for k, v in given.items() if v is not None}


def _load_options_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", help="Keras: the weights file (.h5) of an architecture .json (to_json())"
    )
    parser.add_argument(
        "--head",
        help="PyTorch state_dict files: what follows the recurrent module, comma-separated "
        "Linear/LayerNorm/BatchNorm1d prefixes and activations, e.g. fc,relu,out "
        "(default: the file's Linear layers in order)",
    )
    parser.add_argument(
        "--lstm-output",
        choices=["last", "sequence", "h_n"],
        help="PyTorch state_dict files: the head reads out[:, -1] (last, default), every "
        "step (sequence) or the final states, both directions concatenated (h_n)",
    )
    parser.add_argument(
        "--rnn-nonlinearity",
        choices=["tanh", "relu"],
        help="PyTorch state_dict files: the nonlinearity of an nn.RNN (the file does not "
        "record it; default tanh)",
    )
    parser.add_argument(
        "--output",
        dest="graph_output",
        metavar="NAME",
        help="ONNX: the graph output to compile, for a graph with several (e.g. an LSTM's "
        "Y or Y_h)",
    )


def _load_options(args: argparse.Namespace) -> dict:
    options: dict = {}
    if getattr(args, "weights", None):
        options["weights"] = args.weights
    if getattr(args, "head", None):
        options["head"] = [h.strip() for h in args.head.split(",") if h.strip()]
    if getattr(args, "lstm_output", None):
        options["output"] = args.lstm_output
    if getattr(args, "graph_output", None):
        if "output" in options:
            raise LstmgenError("--output (ONNX) and --lstm-output (PyTorch) cannot be combined")
        options["output"] = args.graph_output
    if getattr(args, "rnn_nonlinearity", None):
        options["nonlinearity"] = args.rnn_nonlinearity
    return options


def _check_model_path(model: str) -> None:
    """A folder or an unreadable file named as the model: one clear line before any
    framework gets to misname it."""
    import os

    if os.path.isdir(model):
        raise LstmgenError(f"{model} is a folder, not a model file")
    if os.path.exists(model) and not os.access(model, os.R_OK):
        raise LstmgenError(f"{model}: permission denied (cannot read the file)")


def _run(args: argparse.Namespace) -> int:
    from . import api

    _check_model_path(args.model)

    if args.command == "inspect":
        from .inspect import describe

        print(describe(api.load(args.model, **_load_options(args)), args.target, _options(args)))
        return 0
    if args.command == "generate":
        for path in api.generate(
            args.model,
            target=args.target,
            name=args.name,
            out=args.out,
            force=args.force,
            load_options=_load_options(args),
            **_options(args),
        ):
            print(path)
        return 0
    if args.command == "verify":
        from .verify import check_run, load_model, read_inputs

        if args.sequences < 1 or (args.timesteps is not None and args.timesteps < 1):
            raise LstmgenError("--sequences and --timesteps must be at least 1")
        check_run(args.sequences, args.timesteps, args.atol)
        if args.report:
            from .report import check_report_path

            check_report_path(args.report)
        loaded = load_model(args.model, **_load_options(args))
        inputs = read_inputs(args.inputs, loaded.ir.input_size) if args.inputs else None
        report = api.verify(
            args.model,
            args.target,
            inputs=inputs,
            sequences=args.sequences,
            timesteps=args.timesteps,
            seed=args.seed,
            atol=args.atol,
            loaded=loaded,
            options=_options(args),
        )
        print(report.summary())
        if args.report:
            from .report import write_report

            print(f"report: {write_report(report, args.report)}")
        return 0 if report.passed else EXIT_MISMATCH
    if args.command == "save-ir":
        from .ir_io import save_ir

        print(save_ir(api.load(args.model, **_load_options(args)), args.output))
        return 0
    raise AssertionError(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        with _boundary(args, debug):
            with console.reporting(enabled=not args.quiet):
                with console.native_output_silenced(not args.verbose):
                    return _run(args)
    except LstmgenError as exc:
        return _fail(error_line(exc), debug)
    except KeyboardInterrupt:
        print("lstmgen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, never a traceback
        return _fail(internal_line(exc, getattr(args, "model", None)), debug)


@contextlib.contextmanager
def _boundary(args: argparse.Namespace, debug: bool) -> Iterator[None]:
    """The run's limits (--limit) and, unless --debug, no Python warnings on stderr."""
    with limits.raised(**limits.parse_assignments(getattr(args, "limit", []) or [])):
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")
            yield


def _fail(line: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
