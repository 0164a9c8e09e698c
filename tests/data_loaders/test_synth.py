"""``distillgraph synth`` against a fake OpenAI-compatible server on a loopback port.

Every test talks HTTP to `examples/fake_teacher.FakeOpenAI` in a thread, never the network:
the kept requests are confirmed by the table, the manifest says where each pair came from and
why requests were rejected, the cache makes a rerun free and resumes an interrupted run, and
each kind of bad input (endpoint down, malformed JSON, refusal, 429, 5xx, a missing or refused
key, a program naming an unknown column) gets a clear message with nothing half-written.
"""

import importlib.util
import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from app.cli import main
from data_loaders.config import SynthConfig
from data_loaders.errors import InputError
from data_loaders.io import read_jsonl
from data_loaders.mentions import NameIndex, normalize
from data_loaders.program_text import (
    dataset_tables,
    mask_request,
    program_messages,
    read_program,
)
from data_loaders.programs import run_program
from data_loaders.synth import client_for, load_split, make_plan, synthesize
from data_loaders.synth_checks import (
    NEW_SYSTEM,
    PARAPHRASE_SYSTEM,
    SUMMARY_SYSTEM,
    Rejected,
    answers_agree,
    check_new,
    check_paraphrase,
    check_summary,
    prose_numbers,
)
from data_loaders.teacher_client import TeacherError
from data_loaders.templates import col_words

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fake = _load("fake_teacher")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "data"
    rc = main(["prepare", str(ROOT / "examples" / "data" / "cars.csv"), "--out", str(out),
               "--config", str(ROOT / "configs" / "prepare_cars.yaml"), "--max-pairs", "80",
               "--quiet"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def tables(dataset):
    return dataset_tables(dataset)


@pytest.fixture(scope="module")
def index(tables):
    return NameIndex(tables[0])


def _argv(data: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["synth", "--data", str(data), "--out", str(out), "--base-url", url,
            "--model", "fake", "--cache-dir", str(out.parent / "cache"), "--max-pairs", "6",
            "--quiet", *extra]


def _config(url: str, tmp_path: Path, **kw) -> SynthConfig:
    base = {"base_url": url, "model": "fake", "cache_dir": str(tmp_path / "cache"),
            "max_source_pairs": 4, "backoff_s": 0.0, "max_retries": 2}
    return SynthConfig(**{**base, **kw})


def _cached(tmp_path: Path) -> int:
    return len(list((tmp_path / "cache").glob("*/*.json")))


# ----------------------------------------------------------------------------- end to end


def test_synth_end_to_end_keeps_only_what_the_table_confirms(dataset, tables, index, tmp_path):
    out = tmp_path / "synth"
    with fake.FakeOpenAI(fake.TableTeacher(tables)) as server:
        argv = _argv(dataset, out, server.base_url, "--paraphrases", "4", "--new-requests", "3")
        assert main(argv) == 0
        asked = len(server.bodies)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    for split in ("val", "test"):  # copied unchanged
        assert (out / f"{split}.jsonl").read_bytes() == (dataset / f"{split}.jsonl").read_bytes()
    m = json.loads((out / "manifest.json").read_text())
    s = m["synth"]
    assert asked == s["paraphrase"]["calls"] + s["new"]["calls"] == 2 * s["source_pairs"]
    # the fake writes one paraphrase without names and one program with a column 'Colour'
    assert s["paraphrase"]["rejected"]["mentions differ"] >= 1
    assert s["new"]["rejected"]["unknown column"] >= 1
    assert any("unknown column 'Colour'" in e for e in s["new"]["examples"])
    assert s["paraphrase"]["kept"] > 0 and s["new"]["kept"] > 0
    for kind in ("paraphrase", "new"):
        t = s[kind]
        assert t["kept"] + sum(t["rejected"].values()) == t["received"]
    assert s["usage"]["calls"] == asked and s["usage"]["input_tokens"] > 0
    original = read_jsonl(dataset / "train.jsonl")
    train = load_split(out / "train.jsonl")
    assert m["counts"]["train"]["total"] == len(train)
    assert [p.model_dump(mode="json") for p in train[: len(original)]] == original
    sources = {r["id"]: r for r in s["sources"]}
    assert len(sources) == len(train)
    assert s["pairs"] == {"template": len(original), "synth-paraphrase": s["paraphrase"]["kept"],
                          "synth-new": s["new"]["kept"]}
    original_ids = {r["id"] for r in original}
    for pair in train[len(original):]:
        src = sources[pair.id]
        assert src["source"] == pair.template and src["parent"] in original_ids
        masked = mask_request(pair.question, index)
        assert pair.program_input == program_messages(tables[0], masked)[1]["content"]
        prog = read_program(pair.program_text, masked, index)
        assert run_program(tables[0], prog) == pair.answer
    # the new dataset is a dataset: it feeds a second synth run and the distill reader
    from distillation.data import load_dataset_dir, program_records

    assert len(program_records(load_dataset_dir(out)["train"])) == len(train)


def test_rerun_reads_the_cache_and_asks_nothing(dataset, tables, tmp_path):
    out = tmp_path / "synth"
    with fake.FakeOpenAI(fake.TableTeacher(tables)) as server:
        assert main(_argv(dataset, out, server.base_url)) == 0
        first = len(server.bodies)
        before = (out / "train.jsonl").read_bytes()
        assert main(_argv(dataset, out, server.base_url)) == 0
        assert len(server.bodies) == first  # nothing asked again
    assert (out / "train.jsonl").read_bytes() == before
    usage = json.loads((out / "manifest.json").read_text())["synth"]["usage"]
    assert usage["calls"] == 0 and usage["cached_calls"] == first
    assert usage["cached_input_tokens"] > 0 and usage["cost"] == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_interrupted_run_writes_nothing_and_resumes_from_the_cache(dataset, tables, tmp_path):
    teacher = fake.TableTeacher(tables)
    served = []

    def dies_after_three(body):
        served.append(1)
        return teacher(body) if len(served) <= 3 else fake.Raw(503, {"error": {"message": "x"}})

    port = _free_port()  # the cache key holds the URL: both runs use the same one
    cfg = _config(f"http://127.0.0.1:{port}/v1", tmp_path, max_concurrency=1, max_retries=0)
    out = tmp_path / "synth"
    plan = make_plan(dataset, cfg)
    with fake.FakeOpenAI(dies_after_three, port):
        with pytest.raises(TeacherError, match=r"HTTP 503.*cached, a rerun asks only"):
            synthesize(plan, client_for(cfg, out), out)
    assert not out.exists() and _cached(tmp_path) == 3
    with fake.FakeOpenAI(teacher, port) as server:
        result = synthesize(make_plan(dataset, cfg), client_for(cfg, out), out)
        assert len(server.bodies) == len(plan.calls) - 3
    usage = result.manifest["synth"]["usage"]
    assert (usage["cached_calls"], usage["calls"]) == (3, len(plan.calls) - 3)
    assert (out / "train.jsonl").is_file()


# ----------------------------------------------------------------------------- bad input


def _errors(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_endpoint_down_is_one_line_and_writes_nothing(dataset, tmp_path, capsys):
    out = tmp_path / "synth"
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    assert main(_argv(dataset, out, url, "--config", str(_retry_yaml(tmp_path)))) == 2
    err = _errors(capsys)
    assert err.startswith("error: cannot reach the teacher at") and "--base-url" in err
    assert "(after 1 retries)" in err
    assert not out.exists() and _cached(tmp_path) == 0


def _retry_yaml(tmp_path: Path, retries: int = 1) -> Path:
    path = tmp_path / "synth.yaml"
    path.write_text(f"synth:\n  max_retries: {retries}\n  backoff_s: 0\n")
    return path


def test_429_is_retried_with_the_endpoints_retry_after(dataset, tables, tmp_path):
    teacher = fake.TableTeacher(tables)
    limited = []

    def rate_limited(body):
        if len(limited) < 2:
            limited.append(1)
            return fake.Raw(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.25"})
        return teacher(body)

    cfg = _config("", tmp_path, max_concurrency=1)
    waits = []

    async def record(seconds):
        waits.append(seconds)

    with fake.FakeOpenAI(rate_limited) as server:
        cfg.base_url = server.base_url
        client = client_for(cfg, tmp_path / "synth")
        client.sleep = record
        result = synthesize(make_plan(dataset, cfg), client, tmp_path / "synth")
    assert waits == [0.25, 0.25] and result.manifest["synth"]["usage"]["retries"] == 2
    assert result.tallies["synth-paraphrase"].kept > 0


def test_429_that_persists_stops_the_run_naming_the_fix(dataset, tmp_path, capsys):
    out = tmp_path / "synth"
    with fake.FakeOpenAI(lambda body: fake.Raw(429, {"error": {"message": "quota"}})) as server:
        argv = _argv(dataset, out, server.base_url, "--config", str(_retry_yaml(tmp_path, 2)),
                     "--max-concurrency", "1")
        assert main(argv) == 2
        assert len(server.bodies) == 3  # the call and its two retries, then the run stops
    err = _errors(capsys)
    assert "HTTP 429" in err and "(after 2 retries)" in err and "--max-concurrency" in err
    assert not out.exists()


def test_backoff_doubles_without_retry_after(dataset, tables, tmp_path):
    failures = []

    def flaky(body):
        if len(failures) < 3:
            failures.append(1)
            return fake.Raw(500, {"error": {"message": "boom"}})
        return fake.TableTeacher(tables)(body)

    cfg = _config("", tmp_path, max_concurrency=1, max_retries=3, backoff_s=2.0,
                  max_source_pairs=1, new_requests=0)
    waits = []

    async def record(seconds):
        waits.append(seconds)

    with fake.FakeOpenAI(flaky) as server:
        cfg.base_url = server.base_url
        client = client_for(cfg, tmp_path / "synth")
        client.sleep = record
        synthesize(make_plan(dataset, cfg), client, tmp_path / "synth")
    # jitter draws each wait from [base/2, base] with base 2, 4, 8
    assert [1 <= waits[0] <= 2, 2 <= waits[1] <= 4, 4 <= waits[2] <= 8] == [True] * 3


@pytest.mark.parametrize(
    ("reply", "reason"),
    [("here you go: paraphrases are nice", "reply is not JSON"),
     ('{"paraphrases": ["a", ', "reply is not JSON"),
     ('{"other": []}', "reply is not JSON"),
     ("I'm sorry, but I can't help with that request.", "teacher refused")],
)
def test_malformed_or_refused_replies_are_counted_and_not_cached(
        dataset, tmp_path, reply, reason):
    cfg = _config("", tmp_path, new_requests=0)
    out = tmp_path / "synth"
    with fake.FakeOpenAI(lambda body: reply) as server:
        cfg.base_url = server.base_url
        result = synthesize(make_plan(dataset, cfg), client_for(cfg, out), out)
        tally = result.tallies["synth-paraphrase"]
        assert tally.bad_replies == {reason: 4} and tally.kept == 0
        assert _cached(tmp_path) == 0  # the next run asks again
        synthesize(make_plan(dataset, cfg), client_for(cfg, out), out)
        assert len(server.bodies) == 8
    m = json.loads((out / "manifest.json").read_text())
    assert m["synth"]["paraphrase"]["bad_replies"] == {reason: 4}
    assert m["synth"]["pairs"] == {"template": m["counts"]["train"]["total"]}


def test_structured_refusal_field_is_a_refusal(dataset, tmp_path):
    body = fake.completion("")
    body["choices"][0]["message"]["refusal"] = "I can't assist with that."
    cfg = _config("", tmp_path, new_requests=0, max_source_pairs=1)
    with fake.FakeOpenAI(lambda b: fake.Raw(200, body)) as server:
        cfg.base_url = server.base_url
        result = synthesize(make_plan(dataset, cfg), client_for(cfg, tmp_path / "o"),
                            tmp_path / "o")
    assert result.tallies["synth-paraphrase"].bad_replies == {"teacher refused": 1}


def test_missing_key_stops_before_any_call(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SYNTH_TEST_KEY", raising=False)
    out = tmp_path / "synth"
    with fake.FakeOpenAI(lambda body: "{}") as server:
        assert main(_argv(dataset, out, server.base_url, "--api-key-env", "SYNTH_TEST_KEY")) == 2
        assert server.bodies == []
    err = _errors(capsys)
    assert "--api-key-env SYNTH_TEST_KEY" in err and "export SYNTH_TEST_KEY" in err
    assert not out.exists()


def test_refused_key_is_not_retried(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNTH_TEST_KEY", "wrong")
    out = tmp_path / "synth"

    def unauthorized(body):
        return fake.Raw(401, {"error": {"message": "Incorrect API key provided"}})

    with fake.FakeOpenAI(unauthorized) as server:
        argv = _argv(dataset, out, server.base_url, "--api-key-env", "SYNTH_TEST_KEY",
                     "--max-concurrency", "1")
        assert main(argv) == 2
        assert len(server.bodies) == 1
        assert server.headers[0]["authorization"] == "Bearer wrong"  # the key from the variable
    err = _errors(capsys)
    assert "refused the API key (HTTP 401)" in err and "$SYNTH_TEST_KEY" in err
    assert not out.exists()


def test_program_naming_an_unknown_column_is_rejected(dataset, tmp_path):
    item = {"request": "how many colours are there", "program": "distinct Colour",
            "answer": "3"}
    cfg = _config("", tmp_path, paraphrases=0, new_requests=1, max_source_pairs=2)
    out = tmp_path / "synth"
    with fake.FakeOpenAI(lambda body: json.dumps({"requests": [item]})) as server:
        cfg.base_url = server.base_url
        result = synthesize(make_plan(dataset, cfg), client_for(cfg, out), out)
    tally = result.tallies["synth-new"]
    assert tally.rejected == {"unknown column": 2} and tally.kept == 0
    assert "unknown column 'Colour'; the columns are Miles_per_Gallon" in tally.examples[0]
    assert _cached(tmp_path) == 2  # the replies were fine; the table refused their programs


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["--paraphrases", "0", "--new-requests", "0"], "nothing to ask"),
     (["--paraphrases", "50"], "'paraphrases'"),
     (["--max-concurrency", "0"], "'max_concurrency'")],
)
def test_bad_options_are_one_line(dataset, tmp_path, capsys, argv, needle):
    assert main(_argv(dataset, tmp_path / "o", "http://127.0.0.1:1/v1", *argv)) == 2
    assert needle in _errors(capsys)


def test_bad_paths_are_one_line(dataset, tmp_path, capsys):
    assert main(_argv(tmp_path, tmp_path / "o", "http://127.0.0.1:1/v1")) == 2
    assert "not a dataset directory" in _errors(capsys)
    assert main(_argv(dataset, dataset, "http://127.0.0.1:1/v1")) == 2
    assert "is the input dataset" in _errors(capsys)
    assert main(["synth", "--data", str(dataset), "--model", "m"]) == 2
    assert "--base-url" in _errors(capsys)


# ----------------------------------------------------------------------------- dry run, limits


def test_dry_run_prints_calls_tokens_and_cost_and_asks_nothing(dataset, tmp_path, capsys):
    prices = tmp_path / "prices.yaml"
    prices.write_text("synth:\n  prices: {input_per_million: 1.0, output_per_million: 2.0}\n")
    out = tmp_path / "synth"
    with fake.FakeOpenAI(lambda body: "{}") as server:
        argv = _argv(dataset, out, server.base_url, "--config", str(prices), "--dry-run")
        assert main(argv) == 0
        assert server.bodies == []
    text = capsys.readouterr().out
    assert "6 train pairs -> 12 teacher calls (0 already cached, 12 to ask)" in text
    assert "estimated tokens:" in text and "at 1/2 per million" in text
    cost = float(text.split("estimated cost: ")[1].split()[0])
    assert cost > 0
    assert not out.exists()


def test_dry_run_counts_cached_calls(dataset, tables, tmp_path, capsys):
    out = tmp_path / "synth"
    port = _free_port()
    with fake.FakeOpenAI(fake.TableTeacher(tables), port) as server:
        assert main(_argv(dataset, out, server.base_url)) == 0
        capsys.readouterr()
        assert main(_argv(dataset, out, server.base_url, "--dry-run")) == 0
    assert "(12 already cached, 0 to ask)" in capsys.readouterr().out


def test_concurrency_limit_bounds_requests_in_flight(dataset, tables, tmp_path):
    teacher = fake.TableTeacher(tables)
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def slow(body):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.05)  # keeps requests overlapping; nothing asserts a duration
        with lock:
            state["now"] -= 1
        return teacher(body)

    cfg = _config("", tmp_path, max_concurrency=2, max_source_pairs=4)
    with fake.FakeOpenAI(slow) as server:
        cfg.base_url = server.base_url
        synthesize(make_plan(dataset, cfg), client_for(cfg, tmp_path / "o"), tmp_path / "o")
        assert len(server.bodies) == 8
    assert state["most"] == 2


def test_prompts_reach_the_endpoint_with_model_and_settings(dataset, tables, tmp_path):
    cfg = _config("", tmp_path, max_source_pairs=1, sampling_temperature=0.3, json_mode=True)
    with fake.FakeOpenAI(fake.TableTeacher(tables)) as server:
        cfg.base_url = server.base_url
        synthesize(make_plan(dataset, cfg), client_for(cfg, tmp_path / "o"), tmp_path / "o")
    systems = [b["messages"][0]["content"] for b in server.bodies]
    assert sorted(systems) == sorted([PARAPHRASE_SYSTEM, NEW_SYSTEM])
    body = server.bodies[0]
    assert body["model"] == "fake" and body["temperature"] == 0.3
    assert body["response_format"] == {"type": "json_object"}


# ----------------------------------------------------------------------------- the checks


def _pair(dataset, qtype: str):
    return next(p for p in load_split(dataset / "train.jsonl") if p.qtype == qtype)


def test_paraphrase_check(dataset, index):
    pair = _pair(dataset, "lookup")
    name = pair.entities[0]
    col = col_words(index.table, pair.provenance.program["column"])
    kept = check_paraphrase(pair, f"{name} {col}??", index)
    assert kept.program_text == pair.program_text and kept.answer == pair.answer
    assert kept.id != pair.id and kept.template == "synth-paraphrase"
    with pytest.raises(Rejected, match="mentions differ"):
        check_paraphrase(pair, f"{col} of that one", index)
    with pytest.raises(Rejected, match="mentions differ"):
        check_paraphrase(pair, f"{name} {col} in 1970", index)
    with pytest.raises(Rejected, match="same as the original"):
        check_paraphrase(pair, pair.question.upper(), index)
    with pytest.raises(Rejected, match="not a request"):
        check_paraphrase(pair, ["a list"], index)


def test_new_request_check(dataset, index):
    table = index.table
    pair = _pair(dataset, "lookup")
    name = pair.entities[0]
    row = pair.provenance.row_ids[0]
    hp = run_program(table, {"op": "lookup", "entity": name, "row_id": row,
                             "column": "Horsepower", "decimals": 2})
    good = {"request": f"{name} hp?", "program": "lookup E1 horsepower", "answer": hp}
    kept = check_new(good, index, set(), pair.id)
    assert kept.program_text == "lookup E1 Horsepower"  # written canonically
    assert kept.answer == hp and kept.qtype == "lookup" and kept.task == "qa"
    assert kept.context.startswith(f"[row {row}]") and kept.entities == [name]
    cases = [
        ({**good, "answer": "1 hp"}, "answer differs from the teacher's"),
        ({**good, "program": "lookup E1"}, "program does not parse"),
        ({**good, "program": "lookup E2 Horsepower"}, "program does not bind"),
        ({**good, "program": "lookup E1 Colour"}, "unknown column"),
        ({**good, "program": "summary_row E1"}, "summary"),
        ({"request": f"is {name} over 3000 lbs", "program": "aggregate count",
          "answer": "9"}, "leaves out a mention"),
        ({"request": "x"}, "not a request with program and answer"),
    ]
    for item, reason in cases:
        with pytest.raises(Rejected) as e:
            check_new(item, index, set(), pair.id)
        assert e.value.reason == reason, (item, e.value)
    with pytest.raises(Rejected, match="names a val/test entity"):
        check_new(good, index, {normalize(name)}, pair.id)


@pytest.mark.parametrize(
    ("stated", "computed", "agree"),
    [("130 hp", "130 hp", True), ("130", "130 hp", True), ("about 104.5", "104.47 hp", True),
     ("104", "104.47 hp", False), ("Yes, it is.", "yes", True), ("no", "yes", False),
     ("True", "yes", True), ("Ford Pinto", "ford pinto", True), ("ford", "ford pinto", False),
     ("usa 20.1 and europe 27.9", "USA: 20.1, Europe: 27.9", True),
     ("usa 20.1", "USA: 20.1, Europe: 27.9", False), ("1,234", "1234", True)],
)
def test_answers_agree(stated, computed, agree):
    assert answers_agree(stated, computed, ["hp"]) is agree


def test_missing_endpoint_settings_are_refused(tmp_path):
    with pytest.raises(InputError, match="--base-url and --model"):
        client_for(SynthConfig(), tmp_path)


def test_readme_synth_commands_run_as_printed_in_dry_run(dataset, tmp_path, capsys, monkeypatch):
    """The README's synth lines, on a small dataset and with --dry-run (no endpoint here)."""
    import shlex

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("(`distillgraph synth`)", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    lines = [shlex.split(ln, comments=True) for ln in block.splitlines() if ln.strip()]
    synth = [w for w in lines if w[:2] == ["distillgraph", "synth"]]
    assert len(synth) == 2 and "--dry-run" in synth[0]
    monkeypatch.chdir(ROOT)  # configs/synth.yaml as printed
    for words in synth:
        words = [str(dataset) if w == "runs/cars/data" else w for w in words[1:]]
        words = [str(tmp_path / "out") if w == "runs/cars/data_synth" else w for w in words]
        assert main([*dict.fromkeys([*words, "--dry-run", "--max-pairs", "2"])]) == 0, words
    out = capsys.readouterr().out
    assert out.count("2 train pairs -> 4 teacher calls") == 2
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- summaries


def test_summaries_keep_only_prose_whose_numbers_and_names_are_in_the_facts(
    dataset, tables, tmp_path
):
    out = tmp_path / "synth"
    with fake.FakeOpenAI(fake.TableTeacher(tables)) as server:
        argv = _argv(dataset, out, server.base_url, "--paraphrases", "0", "--new-requests", "0",
                     "--summaries", "4")
        assert main(argv) == 0
        systems = {b["messages"][0]["content"] for b in server.bodies}
    assert systems == {SUMMARY_SYSTEM}
    s = json.loads((out / "manifest.json").read_text())["synth"]
    t = s["summary"]
    # the fake adds a made-up number to one summary in four and an unshown row to another
    assert t["rejected"]["number not in the facts"] == t["calls"]
    assert t["rejected"].get("names a row not in the facts", 0) + t["rejected"].get(
        "names a val/test entity", 0) == t["calls"]
    assert t["kept"] == 2 * t["calls"] > 0
    assert s["pairs"]["synth-summary"] == t["kept"] and s["paraphrase"]["calls"] == 0
    original = {p.id: p for p in load_split(dataset / "train.jsonl")}
    parents = {r["id"]: r.get("parent") for r in s["sources"]}
    kept = [p for p in load_split(out / "train.jsonl") if p.template == "synth-summary"]
    assert len(kept) == t["kept"]
    for pair in kept:
        parent = original[parents[pair.id]]
        assert parent.qtype in ("summary_row", "summary_group")
        assert (pair.question, pair.context, pair.program_text) == (
            parent.question, parent.context, parent.program_text)
        assert pair.answer != parent.answer and "9999" not in pair.answer


def test_summaries_without_summary_pairs_are_refused(dataset, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for f in dataset.iterdir():
        lines = f.read_text().splitlines()
        if f.name == "train.jsonl":
            lines = [ln for ln in lines if '"summary_' not in ln]
        (data / f.name).write_text("\n".join(lines) + "\n")
    assert main(_argv(data, tmp_path / "o", "http://127.0.0.1:1/v1", "--summaries", "1")) == 2
    assert "no train pair is a summary" in _errors(capsys)


def test_prose_numbers():
    text = "3,504 lbs, 0-60 mph in 12.5 s, four cylinders, one of them, -3 and 1970s."
    assert [v for _, v in prose_numbers(text)] == [3504, 0, 60, 12.5, -3, 1970, 4]


def test_summary_check(dataset, index):
    table = index.table
    pair = _pair(dataset, "summary_row")
    row = pair.provenance.row_ids[0]
    name = pair.entities[0]
    hp = table.df.iloc[row]["Horsepower"]
    good = f"the {name} makes {hp:g} hp."
    kept = check_summary(pair, good, index, set())
    assert kept.answer == good and kept.template == "synth-summary"
    assert (kept.question, kept.context, kept.provenance) == (
        pair.question, pair.context, pair.provenance)
    other = next(n for n in table.df[table.entity_column] if normalize(n) not in
                 normalize(pair.context))
    facts = {round(v) for _, v in prose_numbers(pair.context + pair.answer)}
    bad = next(n for n in range(500, 1000) if n not in facts)  # a number the facts lack
    words = "two three four five six seven eight nine ten eleven twelve".split()
    bad_word = next(w for i, w in enumerate(words, 2) if i not in facts)
    group = _pair(dataset, "summary_group")
    mean = next(ln for ln in group.context.splitlines() if "[fact] mean" in ln)
    value = float(mean.split(": ")[1].split()[0])
    rounded = f"on average about {round(value):g}."
    assert check_summary(group, rounded, index, set()).answer == rounded
    cases = [
        (f"the {name} makes {bad} hp.", "number not in the facts"),
        (f"the {name} has {bad_word} cylinders and {hp:g} hp.", "number not in the facts"),
        (f"the {name} out-pulls the {other}.", "names a row not in the facts"),
        (f"a car with {hp:g} hp.", "does not name its row"),
        (pair.answer.upper(), "same as the reference"),
        (f"the {name} " + "is fine " * 200, "too long"),
        (None, "not a summary"),
    ]
    for text, reason in cases:
        with pytest.raises(Rejected) as e:
            check_summary(pair, text, index, set())
        assert e.value.reason == reason, (text, e.value)
    with pytest.raises(Rejected, match="names a val/test entity"):
        check_summary(pair, good, index, {normalize(name)})
    origin = table.df.iloc[row]["Origin"]
    elsewhere = next(o for o in table.df["Origin"].unique() if o != origin)
    with pytest.raises(Rejected, match="names a value not in the facts"):
        check_summary(pair, f"the {name}, made in {elsewhere}.", index, set())
