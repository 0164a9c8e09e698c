"""Routing: keyword rules, label scoring, the probe gate, typed edges, router accuracy."""

from __future__ import annotations

import pytest

from data_loaders.config import PrepareConfig
from data_loaders.config_loader import load_config
from data_loaders.dataset import build_dataset
from graphs.nodes import Nodes, Router, route_messages, router_accuracy, rule_route
from graphs.prompts import ROUTER_LABELS, ROUTER_PROBES


@pytest.mark.parametrize(
    ("query", "route"),
    [
        ("What is the horsepower of ford pinto?", "qa"),
        ("What is the horsepower of ford torino?", "qa"),  # "no?" inside a name is no tag
        ("Which car is on the right?", "qa"),
        ("the mazda rx-4 has 8 cylinders, right?", "validator"),
        ("amc hornet is from the USA, isn't it?", "validator"),
        ("How many cars have origin Japan?", "qa"),
        ("Does ford pinto or amc gremlin have the higher weight?", "qa"),
        ("Which car with origin Europe has the highest horsepower?", "qa"),
        ("Summarize the row for amc rebel sst.", "summarizer"),
        ("Describe ford pinto in one sentence.", "summarizer"),
        ("Give an overview of the cars with model year 1976.", "summarizer"),
        ("Is it true that ford pinto has 4 cylinders?", "validator"),
        ("True or false: the ford pinto is from Japan.", "validator"),
        ("Answer yes or no: ford pinto has a horsepower of 75 hp.", "validator"),
        ("Claim: the weight of amc gremlin is 2648 lbs. Is this correct?", "validator"),
        ("Is the horsepower of ford pinto 75 hp?", "validator"),
        ("Is it true that the overview says ford pinto is fast?", "validator"),
    ],
)
def test_rule_route(query, route):
    assert rule_route(query) == route


class _Scorer:
    """A model that scores labels from a table of answers (the 'model' of these tests)."""

    def __init__(self, pick, margin=5.0):
        self.pick, self.margin, self.calls = pick, margin, 0

    def score_labels(self, messages, labels):
        self.calls += 1
        query = messages[-1].content
        best = self.pick(query)
        return {lab: (0.0 if lab == best else -self.margin) for lab in labels}


def test_scores_win_when_trusted_and_confident():
    truth = dict(ROUTER_PROBES)

    def pick(text):
        for q, lab in truth.items():
            if q in text:
                return lab
        return "summarize"  # every non-probe query: the model says summarize

    router = Router(_Scorer(pick), mode="score", min_margin=1.0)
    route, source, scores = router.route("What is the horsepower of ford pinto?")
    assert (route, source) == ("summarizer", "scores")
    assert set(scores) == set(ROUTER_LABELS)


def test_low_margin_falls_back_to_rules():
    truth = dict(ROUTER_PROBES)
    scorer = _Scorer(lambda t: next((lab for q, lab in truth.items() if q in t), "validate"))
    router = Router(scorer, mode="score", min_margin=10.0)
    assert router.trusted()
    route, source, _ = router.route("What is the horsepower of ford pinto?")
    assert (route, source) == ("qa", "rules")


def test_untrusted_model_routes_by_rules_and_probes_once():
    scorer = _Scorer(lambda t: "validate")  # confidently wrong on the probes
    router = Router(scorer, mode="score", min_margin=1.0)
    assert router.route("Summarize ford pinto.")[:2] == ("summarizer", "rules")
    calls = scorer.calls
    router.route("What is the weight of ford pinto?")
    assert scorer.calls == calls  # the probe verdict is cached


def test_fake_models_route_by_rules():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    router = Router(FakeListChatModel(responses=["validate"]))
    assert router.route("Summarize ford pinto.") == ("summarizer", "rules", {})


def test_routing_prompt_holds_only_the_query():
    msgs = route_messages("What is X?")
    assert "What is X?" in msgs[-1].content
    assert "[row" not in "".join(m.content for m in msgs)


def test_pick_task_is_typed_and_strict():
    assert Nodes.pick_task({"task": "qa"}) == "qa"
    with pytest.raises(ValueError, match="router produced"):
        Nodes.pick_task({"task": "poem"})


def test_router_accuracy_on_cars_test_split(cars, cars_yaml):
    cfg = load_config(PrepareConfig, cars_yaml, overrides=["max_pairs=300"])
    ds = build_dataset([cars], cfg)
    acc = router_accuracy(rule_route, ds.splits["test"])
    assert acc >= 0.98
    assert router_accuracy(lambda q: "qa", ds.splits["test"]) < 0.9  # the metric can fail
    with pytest.raises(ValueError):
        router_accuracy(rule_route, [])


def test_routing_examples_train_the_exact_prompt_the_router_scores(tiny_model_dir):
    from distillation.data import IGNORE_INDEX, encode_example, routing_records
    from graphs.chat_model import LocalChatModel

    model = LocalChatModel.from_dir(tiny_model_dir)
    pair = {"id": "p1", "task": "validate", "question": "Is it true that ford pinto has 75 hp?",
            "answer": "yes", "context": "[row 3] Name: ford pinto | horsepower: 75 hp"}
    (route,) = routing_records([pair], share=1.0, seed=0)
    ex = encode_example(model.tokenizer, route, max_seq_len=512)
    prompt = model.prompt_ids(route_messages(pair["question"]))
    assert ex["input_ids"][: len(prompt)] == prompt
    answer = [t for t in ex["labels"] if t != IGNORE_INDEX][:-1]  # without end-of-turn
    assert model.tokenizer.decode(answer) == "validate" and "validate" in ROUTER_LABELS
