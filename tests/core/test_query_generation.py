import time
from dataclasses import dataclass

import pytest

from core.generation.llamacpp import is_available
from core.query_generation import (
    QuestionGenConfig,
    generate_questions,
    generate_questions_in_workers,
    parse_questions,
    prompt_for,
)


@dataclass
class Result:
    text: str
    completion_tokens: int = 5


class ScriptedGenerator:
    """Answers every prompt with the same text (the answer model is too slow for unit tests)."""

    def __init__(self, text: str, delay: float = 0.0) -> None:
        self.text, self.delay, self.prompts = text, delay, []

    def generate(self, prompt, **settings):
        self.prompts.append((prompt, settings))
        time.sleep(self.delay)
        return Result(self.text)


def test_parse_questions_drops_numbering_duplicates_and_non_questions():
    text = (
        "1. How do I reset my password?\n"
        "2) How do I reset my password?\n"
        "- Where is the *export* button? It is on the left.\n"
        "Here are some questions:\n"
        '"Why?"\n'
        "Q3: Can I undo a send?\n"
        "4. Can I change my name?\n"
    )
    assert parse_questions(text, QuestionGenConfig(questions=3)) == [
        "How do I reset my password?",
        "Where is the *export* button?",
        "Can I undo a send?",
    ]
    assert parse_questions(text, QuestionGenConfig(questions=1)) == ["How do I reset my password?"]
    assert parse_questions("no questions here") == []


def test_prompt_cuts_long_passages_at_a_word():
    config = QuestionGenConfig(passage_chars=60, questions=2)
    prompt = prompt_for("word " * 100, config)
    assert "Write 2 different short questions" in prompt
    passage = prompt.split("\n\n")[1]
    assert passage.endswith(" …") and len(passage) <= 62


def test_one_question_prompt_reads_naturally():
    prompt = prompt_for("Refunds take a week.", QuestionGenConfig())
    assert prompt.endswith("Write one short question a user could ask that this answer solves.")


def test_generate_questions_one_prompt_per_passage_with_the_budgets():
    gen = ScriptedGenerator("1. What is the refund window?\n2. How long do refunds take?")
    passages = ["Refunds within 30 days.", "Refunds take a week."]
    result = generate_questions(gen, passages, QuestionGenConfig(questions=2))
    assert result.questions == [["What is the refund window?", "How long do refunds take?"]] * 2
    assert result.attempted == 2 and result.total == 4 and result.completion_tokens == 10
    assert gen.prompts[0][1] == {"max_new_tokens": 24, "repetition_penalty": 1.1}
    assert "Refunds within 30 days." in gen.prompts[0][0]


def test_generate_questions_stops_at_the_time_budget():
    gen = ScriptedGenerator("What is it?", delay=0.05)
    result = generate_questions(gen, ["a passage"] * 50, QuestionGenConfig(max_seconds=0.01))
    assert 1 <= result.attempted < 50
    assert result.questions[result.attempted :] == [[]] * (50 - result.attempted)
    assert result.done == [True] * result.attempted + [False] * (50 - result.attempted)


@pytest.mark.slow  # two processes load SmolLM2 with llama.cpp: ~15 s quiet
@pytest.mark.skipif(not is_available(), reason="llama-cpp-python is not installed")
def test_worker_processes_write_questions_in_passage_order():
    passages = [
        "Refunds are paid to the original card within 5 business days after we receive the item.",
        "We ship to France, Germany and Spain; delivery takes 3 to 4 days.",
        "To reset your password, click 'Forgot password' on the login page.",
    ]
    result = generate_questions_in_workers(passages, QuestionGenConfig(workers=2))
    assert result.workers == 2 and result.done == [True] * 3 and result.attempted == 3
    assert all(len(q) <= 1 and all(x.endswith("?") for x in q) for q in result.questions)
    assert result.total >= 2 and result.cpu_seconds > 0
    late = generate_questions_in_workers(passages, QuestionGenConfig(workers=2, max_seconds=0.001))
    assert late.done == [False] * 3 and late.total == 0


@pytest.mark.parametrize("field, value", [("questions", 0), ("max_seconds", 0), ("min_chars", 500)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        QuestionGenConfig(**{field: value})
