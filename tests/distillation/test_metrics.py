"""Answer metrics: normalization, numeric tolerance with units, F1, yes/no, ROUGE-L, CIs, gap."""

import math

import pytest

from distillation import metrics as M


@pytest.mark.parametrize(
    ("pred", "ref"),
    [("The Ford Pinto.", "ford pinto"), ("  FORD   pinto ", "Ford Pinto"), ("3.5", "3.5.")],
)
def test_exact_match_after_normalization(pred, ref):
    assert M.exact_match(pred, ref)


def test_normalize_keeps_decimals_and_signs():
    assert M.normalize_answer("An -3.25 degrees!") == "-3.25 degrees"
    assert not M.exact_match("3.25", "325")


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("18 mpg", "18 mpg", True),
        ("18.0 mpg", "18 mpg", True),
        ("18", "18 mpg", True),  # a missing unit is accepted
        ("18 kg", "18 mpg", False),  # a different unit is not
        ("The mean is 119.1 hp.", "119.05 hp", True),  # within 1%
        ("121 hp", "119.05 hp", False),  # 1.6% off
        ("1,212 lbs", "1200 lb", True),  # thousands separator, plural unit, 1%
        ("$1,200.00", "$1,200", True),
        ("45 percent", "45%", True),
        ("18.4", "18", True),  # rounds to the reference's precision
        ("18.6", "18", False),
        ("3.14", "3.1416", True),
        ("-3.5", "-3.50", True),
        ("no number here", "18 mpg", False),
    ],
)
def test_numeric_match(pred, ref, expected):
    assert M.numeric_match(pred, ref) is expected


@pytest.mark.parametrize("ref", ["ford pinto", "1970-01-01", "yes", "18 mpg and 4 cylinders"])
def test_numeric_match_not_applicable(ref):
    assert M.numeric_match("18", ref) is None


def test_parse_quantity_units_and_currency():
    q = M.parse_quantity("about 1,234.5 lbs")
    assert (q.value, q.decimals, q.unit) == (1234.5, 1, "lb")
    assert M.parse_quantity("$12").unit == "$"
    assert M.parse_quantity("nothing") is None


def test_token_f1():
    assert M.token_f1("ford pinto", "The Ford Pinto") == 1.0
    assert M.token_f1("ford", "ford pinto") == pytest.approx(2 / 3)
    assert M.token_f1("chevy", "ford pinto") == 0.0
    assert M.token_f1("", "") == 1.0
    assert M.token_f1("", "x") == 0.0


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Yes, it is.", "yes"),
        ("yes", "yes"),
        ("No.", "no"),
        ("No, it has 8 cylinders.", "no"),
        ("True", "yes"),
        ("False: 8 cylinders", "no"),
        ("Not true", "no"),
        ("It is not true.", "no"),
        ("That is correct.", "yes"),
        ("The car has 8 cylinders", None),
        ("", None),
    ],
)
def test_parse_yes_no(text, verdict):
    assert M.parse_yes_no(text) == verdict


def test_yes_no_match():
    assert M.yes_no_match("Yes, it is.", "yes") is True
    assert M.yes_no_match("No", "Yes, 8 cylinders.") is False
    assert M.yes_no_match("yes", "ford pinto") is None


def test_rouge_l():
    assert M.rouge_l("ford pinto has 18 mpg", "ford pinto has 18 mpg") == pytest.approx(1.0)
    assert M.rouge_l("chevy", "ford pinto") == 0.0
    # LCS "cat sat on mat" = 4 of 6 tokens each side -> P = R = F = 2/3
    assert M.rouge_l("the cat sat on the mat", "a cat sat on a mat") == pytest.approx(2 / 3)


def test_wilson_interval_known_values_and_bounds():
    lo, hi = M.wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    lo, hi = M.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = M.wilson_interval(10, 10)
    assert hi <= 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert M.wilson_interval(0, 0) == (0.0, 1.0)
    for k in range(0, 21):
        lo, hi = M.wilson_interval(k, 20)
        assert 0.0 <= lo <= k / 20 <= hi <= 1.0


def test_bootstrap_is_seeded_and_brackets_the_mean():
    xs = [0.1, 0.4, 0.5, 0.9, 0.3, 0.7]
    a = M.bootstrap_interval(xs, seed=3)
    assert a == M.bootstrap_interval(xs, seed=3)
    assert a[0] <= sum(xs) / len(xs) <= a[1]
    assert M.bootstrap_interval([0.5]) == (0.5, 0.5)


def test_summarize_scores_picks_interval_and_skips_none():
    s = M.summarize_scores([1, 0, None, 1, 1])
    assert s["n"] == 4 and s["value"] == 0.75 and s["method"] == "wilson"
    assert s["ci95"] == list(M.wilson_interval(3, 4))
    s = M.summarize_scores([0.2, 0.4, 0.9])
    assert s["method"] == "bootstrap" and s["value"] == pytest.approx(0.5)
    # ROUGE-L scores that happen to be 0/1 are still a mean when the caller says so
    assert M.summarize_scores([0.0, 1.0], proportion=False)["method"] == "bootstrap"
    assert M.summarize_scores([None, None]) is None


def test_gap_closed():
    assert M.gap_closed(0.8, 0.4, 0.7) == pytest.approx(0.75)
    assert M.gap_closed(0.8, 0.4, 0.8) == pytest.approx(1.0)
    assert M.gap_closed(0.8, 0.4, 0.3) == pytest.approx(-0.25)
    assert M.gap_closed(0.5, 0.5, 0.9) is None  # zero gap: undefined, not inf/NaN
    assert M.gap_closed(0.4, 0.8, 0.6) == pytest.approx(0.5)  # baseline above reference


def test_score_example_headline_per_type():
    s = M.score_example("18.0 mpg", "18 mpg", "lookup")
    assert s["exact_match"] == 0.0 and s["numeric_match"] == 1.0 and s["accuracy"] == 1.0
    assert s["yes_no"] is None and s["rouge_l"] is None
    s = M.score_example("Yes, it is.", "yes", "claim")
    assert s["yes_no"] == 1.0 and s["accuracy"] == 1.0 and s["exact_match"] == 0.0
    s = M.score_example("ford pinto is cheap", "ford pinto is a cheap car", "summary_row")
    assert s["accuracy"] == s["rouge_l"] and 0 < s["accuracy"] < 1
    s = M.score_example("chevy", "ford pinto", "superlative")
    assert s["accuracy"] == 0.0 and s["numeric_match"] is None
    assert all(v is None or not math.isnan(v) for v in s.values())
