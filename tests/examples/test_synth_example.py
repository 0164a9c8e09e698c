"""``examples/synth_example.py --fake`` runs end to end, and its second run reads the cache."""

import importlib.util
import json
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _example():
    spec = importlib.util.spec_from_file_location("synth_example",
                                                  ROOT / "examples" / "synth_example.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["synth_example"] = module
    spec.loader.exec_module(module)
    return module


def test_synth_example_fake_runs_twice_the_second_from_the_cache(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    example = _example()
    argv = ["--fake", "--work", str(tmp_path), "--fake-port", str(port), "--max-pairs", "5"]
    assert example.main(argv) == 0
    out = capsys.readouterr().out
    assert "[synth-paraphrase]" in out and "[synth-new]" in out and "[synth-summary]" in out
    assert "unknown column 'Colour'" in out and "mentions differ" in out
    assert "[summary] number not in the facts: 9999" in out
    first = json.loads((tmp_path / "data_synth" / "manifest.json").read_text())["synth"]
    assert first["paraphrase"]["calls"] == first["new"]["calls"] == 5
    assert first["summary"]["calls"] == 5  # the first 5 summary pairs of the train split
    assert first["usage"]["calls"] == 15
    assert example.main(argv) == 0
    second = json.loads((tmp_path / "data_synth" / "manifest.json").read_text())["synth"]
    assert second["usage"]["calls"] == 0 and second["usage"]["cached_calls"] == 15
    assert second["pairs"] == first["pairs"]
