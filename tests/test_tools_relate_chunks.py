"""Relate chunking beyond GAR's prompt slots: split, question rewrite, answer mapping (pure)."""

from __future__ import annotations

import pytest

from gar_tool.tools.errors import ToolInputError
from gar_tool.tools.relate_chunks import check_references, plan_chunks, split_balanced, to_global, to_ids


@pytest.mark.parametrize("n, slots, sizes", [
    (1, 5, [1]), (5, 5, [5]), (6, 5, [3, 3]), (7, 5, [4, 3]), (10, 5, [5, 5]), (11, 5, [4, 4, 3]), (3, 1, [1, 1, 1]),
])
def test_split_balanced(n, slots, sizes):
    chunks = split_balanced(n, slots)
    assert [len(c) for c in chunks] == sizes
    assert [i for c in chunks for i in c] == list(range(n))  # list order, every region once


def test_plan_without_chunking_keeps_the_question():
    (plan,) = plan_chunks("Is <Prompt1> left of <Prompt0>?", 2, 5)
    assert plan.members == (0, 1) and plan.question == "Is <Prompt1> left of <Prompt0>?"


def test_plan_renumbers_and_names_outside_regions():
    q = "Which of <Prompt0>, <Prompt1>, <Prompt2>, <Prompt3>, <Prompt4>, <Prompt5> or <Prompt6> is nearest <Prompt6>?"
    labels = {5: "a dog"}
    plans = plan_chunks(q, 7, 5, lambda i: labels.get(i, "another region"))
    assert [p.members for p in plans] == [(0, 1, 2, 3), (4, 5, 6)]
    assert plans[0].question == ("Which of <Prompt0>, <Prompt1>, <Prompt2>, <Prompt3>, another region, a dog or "
                                 "another region is nearest another region?")
    assert plans[1].question == ("Which of another region, another region, another region, another region, "
                                 "<Prompt0>, <Prompt1> or <Prompt2> is nearest <Prompt2>?")


def test_answers_map_back():
    assert to_global("<Prompt1> is above <Prompt0>; <Prompt3> too", (4, 5, 6)) == "<Prompt5> is above <Prompt4>; <Prompt?> too"
    assert to_ids("<Prompt1> holds <Prompt0>, not <Prompt9>", ["r4", "r7"]) == "r7 holds r4, not an unknown region"


@pytest.mark.parametrize("question, n, message", [
    ("What is this?", 2, "names no region"),
    ("Is <Prompt0> near <Prompt2>?", 2, "names <Prompt2> but only 2 region"),
    ("Describe <Prompt1>.", 3, r"regions <Prompt0> \(r1\), <Prompt2> \(r3\) are never named"),
])
def test_check_references(question, n, message):
    with pytest.raises(ToolInputError, match=message):
        check_references(question, n, ["r1", "r2", "r3"])
