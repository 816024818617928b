"""Loading: an `.onnx` file or an onnx.ModelProto -> checked by onnx.checker, walked into the
IR, returned as a `Loaded` with onnxruntime running the file as its oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import MissingDependencyError, ModelError
from .. import Loaded
from .oracle import oracle_name, predictor, runnable_by_onnxruntime
from .sizes import check_declared_tensors
from .values import default_opset, first_line
from .walk import Walk


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError(
            "the ONNX extractor needs onnx: pip install "
            "'lstmgen[onnx]' (or pip install onnx onnxruntime)"
        ) from None
    return onnx


def open_file(path: Path, output: str | None = None) -> Loaded:
    """The IR of an `.onnx` file, with onnxruntime running the file as the oracle;
    `output` names the graph output to compile (needed when the graph has several)."""
    onnx = import_onnx()
    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, ...
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(exc)})") from None
    check_declared_tensors(proto, str(path))  # before any external data is read
    try:
        onnx.load_external_data_for_model(proto, str(path.parent))
    except Exception as exc:  # missing or out-of-folder external data, ...
        raise ModelError(f"{path}: cannot load its external data ({first_line(exc)})") from None
    return open_proto(
        proto,
        path.stem,
        f"file {path.name}",
        session_source=str(path),
        label=str(path),
        output=output,
    )


def open_proto(
    proto: Any,
    name: str = "model",
    where: str = "in-memory model",
    session_source: Any = None,
    label: str | None = None,
    output: str | None = None,
) -> Loaded:
    """The IR of an onnx.ModelProto; `session_source` (a path or bytes) is what
    onnxruntime loads for the oracle (the serialised proto by default); `output` names the
    graph output to compile."""
    onnx = import_onnx()
    label = label or name
    check_declared_tensors(proto, label)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ModelError(
            f"{label}: not a valid ONNX model (onnx.checker: {first_line(exc)})"
        ) from None
    opset = default_opset(proto)
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p)
    source = f"ONNX opset {opset}, {where}" + (f", from {producer}" if producer else "")
    walk = Walk(proto, label)
    ir, plan = walk.run(name, source, output)
    rewritten = runnable_by_onnxruntime(proto)
    if rewritten is not None:
        session_source = rewritten.SerializeToString()
    elif session_source is None:
        session_source = proto.SerializeToString()
    return Loaded(ir, predictor(session_source, plan), oracle_name(rewritten is not None))
