"""The third-party MATLAB files of ../shared/real_models (INDEX.md there): a network saved
with save(file, 'net') is a MATLAB object only MATLAB can read; lstmgen refuses it in one
line naming the way out (matlab/lstmgen_export.m), exits 2 and writes nothing."""

from __future__ import annotations

import pytest
from support import real_model, require_module

from lstmgen.cli import main
from lstmgen.errors import ModelError
from lstmgen.extractors import open_model

SERIES_NETWORK = "matlab_rossler_lstm_seriesnetwork/LSTM_20_70_90_0_100k.mat"


def test_series_network_object_is_refused_with_the_way_out(tmp_path, capsys):
    require_module("scipy")
    path = real_model(SERIES_NETWORK)
    out = tmp_path / "out"
    for command in (["generate", str(path), "--out", str(out)], ["inspect", str(path)]):
        assert main(command) == 2, command
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and not captured.out, (command, captured)
        assert "MATLAB object 'net' (SeriesNetwork)" in err[0], err
        assert "export the network in MATLAB with matlab/lstmgen_export.m" in err[0], err
    assert not out.exists()
    with pytest.raises(ModelError, match="only MATLAB can read"):
        open_model(path)
