"""Tests of the story grammar: unique parses, exact entropy, and the structure it promises."""

import math
import random
import re

import pytest

from roots_course.errors import DataError
from roots_course.core.grammar import Option, StoryGrammar


@pytest.fixture(scope="module")
def grammar() -> StoryGrammar:
    return StoryGrammar()


@pytest.fixture(scope="module")
def samples(grammar):
    rng = random.Random(1234)
    return [grammar.sample_with_choices(rng) for _ in range(5000)]


def test_parse_recovers_exactly_the_choices_made(grammar, samples):
    # The parser never guesses, so reading a story back yields the very choices that wrote it,
    # and log p(story) is the sum of their log-probabilities.
    for story, choices in samples[:500]:
        assert grammar.parse(story) == choices
        expected = sum(math.log(c.prob) for c in choices)
        assert math.isclose(grammar.log_prob(story), expected, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(grammar.surprisal_bits(story), -expected / math.log(2), rel_tol=1e-12)


def test_exact_entropy_matches_monte_carlo(grammar, samples):
    bits = [-sum(math.log2(c.prob) for c in choices) for _, choices in samples]
    mean_bits = sum(bits) / len(bits)
    assert mean_bits == pytest.approx(grammar.entropy_bits_per_story(), rel=0.02)


def test_expected_length_matches_monte_carlo(grammar, samples):
    sep = len(grammar.separator)
    mean_chars = sum(len(story) + sep for story, _ in samples) / len(samples)
    assert mean_chars == pytest.approx(grammar.expected_chars_per_story(), rel=0.02)
    assert grammar.entropy_bits_per_char() == pytest.approx(
        grammar.entropy_bits_per_story() / grammar.expected_chars_per_story()
    )


def test_stories_are_distinct_strings_for_distinct_choices(samples):
    # Uniqueness of derivation seen from the other side: equal strings have equal choices.
    by_text: dict[str, list] = {}
    for story, choices in samples:
        assert by_text.setdefault(story, choices) == choices


def test_long_range_structure(samples):
    for story, _ in samples[:300]:
        m = re.match(r"Once upon a time, there was an? \w+ (\w+) named (\w+)\.", story)
        assert m, story
        kind, name = m.groups()
        she = "she" if kind in {"girl", "princess", "witch"} else "he"
        assert f"In the end, {name} " in story  # the name comes back in the last sentence
        assert story.endswith(".") and f", and {she} " in story  # the pronoun agrees
        pronouns = {p.lower() for p in re.findall(r"\b(?:[Ss]he|[Hh]e|her|his)\b", story)}
        assert pronouns <= ({"she", "her"} if she == "she" else {"he", "his"})
        assert "\n" not in story


def test_parse_rejects_what_is_not_a_story(grammar, samples):
    story = samples[0][0]
    name = re.search(r"named (\w+)\.", story).group(1)
    bad = [
        "",
        "Hello world.",
        story + grammar.separator,  # one story at a time, without the separator
        story[:-1],  # the final period is missing
        story.replace(f"In the end, {name}", "In the end, Bob"),  # the name must come back
        story.replace(", and she ", ", and he ") if ", and she " in story
        else story.replace(", and he ", ", and she "),  # pronoun disagrees with the hero
        story.replace("Once upon", "Once  upon"),
    ]
    for text in bad:
        with pytest.raises(DataError, match="not a story"):
            grammar.log_prob(text)


def test_ambiguous_grammar_is_refused_at_construction():
    class Ambiguous(StoryGrammar):
        def _build_options(self, state, ctx):
            if state[0] == "feeling":  # " and she smiled" vs " and she smiled." can't be told apart
                she = ctx.she
                return [Option(f" and {she} smiled", 0.5, None), Option(f" and {she} smiled.", 0.5, None)]
            return super()._build_options(state, ctx)

    with pytest.raises(RuntimeError, match="ambiguous"):
        Ambiguous()


def test_figures_are_sensible(grammar):
    assert 20 < grammar.entropy_bits_per_story() < 60
    assert 150 < grammar.expected_chars_per_story() < 400
    assert 0.05 < grammar.entropy_bits_per_char() < 0.5
