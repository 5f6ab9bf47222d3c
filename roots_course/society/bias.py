"""Bias as a property of data: count what the corpus says, then ask whether the model says it too.

Two halves, kept apart on purpose:

- **The corpus.** How often each pronoun occurs (he/him/his/himself counted as one group, and so on),
  and which role nouns ("user", "programmer", "caller", ...) share a sentence with which pronouns.
  Counting needs no model and no opinion; it is the evidence any claim about the model must start from.
- **The model.** Probe templates ("If the user needs to escape a character,") followed by each
  pronoun: the probability of the pronoun's first token (what most probes report) and of the whole
  word with a fixed continuation (" he can" / " she can" / " they can", the same verb for all three so
  that grammar does not decide). Shares are normalised over the candidates.

What probes cannot show: a template is one sentence of our choosing; a next-token probability is not
behaviour in use; and with a byte-pair tokenizer " he" may be one token that also begins "help",
"header" and "here" while " she" is two tokens, so first-token probabilities compare unlike things.
Sentence co-occurrence is not coreference: "user" and "they" in one sentence need not be the same person.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from roots_course.errors import ConfigError
from roots_course.core.tokenizer import Tokenizer
from roots_course.core.modes import evaluating

# Pronoun groups: every form of one pronoun counts for its group. "us" is left out of "we" (it is
# also the country code in "US-ASCII"), and "I" is left out (a loop variable "i" would count).
PRONOUNS: dict[str, tuple[str, ...]] = {
    "he": ("he", "him", "his", "himself"),
    "she": ("she", "her", "hers", "herself"),
    "they": ("they", "them", "their", "theirs", "themselves"),
    "it": ("it", "its", "itself"),
    "you": ("you", "your", "yours", "yourself", "yourselves"),
    "we": ("we", "our", "ours", "ourselves"),
}
# Nouns for people (and the programs that stand in for them) that documentation talks about.
ROLE_NOUNS: tuple[str, ...] = ("user", "programmer", "developer", "author", "reader", "caller", "client",
                               "owner", "administrator", "person", "people", "child", "parent")

_WORD = re.compile(r"[A-Za-z]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased: maximal runs of ASCII letters ("don't" gives "don", "t")."""
    return [w.lower() for w in _WORD.findall(text)]


def word_counts(text: str, vocabulary: Iterable[str] | None = None) -> Counter:
    """How often each word occurs (lower-cased); only words of ``vocabulary`` when given."""
    counts = Counter(words(text))
    if vocabulary is None:
        return counts
    wanted = {w.lower() for w in vocabulary}
    return Counter({w: counts[w] for w in wanted})


def pronoun_counts(text: str, groups: Mapping[str, Sequence[str]] = PRONOUNS) -> dict[str, dict[str, int]]:
    """group -> form -> occurrences as a whole word (case-insensitive)."""
    counts = Counter(words(text))
    return {group: {form: counts[form] for form in forms} for group, forms in groups.items()}


def group_totals(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """group -> occurrences of all its forms."""
    return {group: sum(forms.values()) for group, forms in counts.items()}


def shares(values: Mapping[str, float]) -> dict[str, float]:
    """Each value divided by their sum (all zero: all NaN, since no share is defined)."""
    total = sum(values.values())
    return {k: (v / total if total else float("nan")) for k, v in values.items()}


def sentences(text: str) -> list[str]:
    """``text`` cut after ., ! or ? followed by white space, and at blank lines."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _noun_forms(noun: str) -> set[str]:
    return {noun, noun + "s"} if not noun.endswith("s") and noun != "people" else {noun}


def cooccurrence(text: str, nouns: Sequence[str] = ROLE_NOUNS,
                 groups: Mapping[str, Sequence[str]] = PRONOUNS) -> dict[str, dict[str, int]]:
    """noun -> group -> number of sentences holding the noun (or its plural in -s) and any form of the
    group. Also ``"(sentences)"`` -> group: sentences with the group at all, the base rate to compare with."""
    table = {noun: {group: 0 for group in groups} for noun in nouns}
    base = {group: 0 for group in groups}
    forms = {group: set(fs) for group, fs in groups.items()}
    noun_forms = {noun: _noun_forms(noun) for noun in nouns}
    for sentence in sentences(text):
        present = set(words(sentence))
        hit = [g for g in groups if present & forms[g]]
        for g in hit:
            base[g] += 1
        if not hit:
            continue
        for noun in nouns:
            if present & noun_forms[noun]:
                for g in hit:
                    table[noun][g] += 1
    table["(sentences)"] = base
    return table


def keyword_in_context(text: str, word: str, width: int = 50, limit: int = 10) -> list[str]:
    """Up to ``limit`` occurrences of ``word`` (whole word, case-insensitive) with ``width`` characters
    on each side, newlines shown as spaces: to read what a count is made of."""
    out = []
    for match in re.finditer(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", text, flags=re.IGNORECASE):
        left = text[max(0, match.start() - width) : match.start()]
        right = text[match.end() : match.end() + width]
        out.append(f"{left}[{match.group(0)}]{right}".replace("\n", " "))
        if len(out) == limit:
            break
    return out


# ---------------------------------------------------------------------------------------------
# What the model says
# ---------------------------------------------------------------------------------------------


def continuation_logprobs(model, tokenizer: Tokenizer, prefix: str, continuations: Sequence[str]) -> list[float]:
    """log P(continuation | prefix) in nats for each continuation: the sum over its tokens.

    Prefix and continuation are tokenized separately and joined, so every candidate is scored after
    exactly the same prefix tokens (each continuation should start with a space, a natural boundary).
    """
    device = model.tok_emb.weight.device
    block = model.config.block_size
    head = tokenizer.encode(prefix)
    out = []
    with evaluating(model):
        for text in continuations:
            tail = tokenizer.encode(text)
            if not head or not tail:
                raise ConfigError(f"prefix {prefix!r} and continuation {text!r} must both be non-empty")
            ids = (head + tail)[-(block + 1):]
            n_tail = min(len(tail), len(ids) - 1)
            x = torch.tensor(ids, device=device)
            logp = F.log_softmax(model(x[None, :-1]).logits[0].float(), dim=-1)  # (len - 1, V)
            targets = x[-n_tail:]
            out.append(float(logp[-n_tail:].gather(1, targets[:, None]).sum()))
    return out


def next_token_probs(model, tokenizer: Tokenizer, prefix: str, candidates: Sequence[str]) -> list[float]:
    """The probability of the *first token* of each candidate right after ``prefix``: what a probe of
    "next-token probabilities" reads. Candidates whose first tokens coincide get the same number."""
    with evaluating(model):
        ids = tokenizer.encode(prefix)[-model.config.block_size:]
        x = torch.tensor([ids], device=model.tok_emb.weight.device)
        probs = model(x).logits[0, -1].float().softmax(dim=-1)  # (V,)
        return [float(probs[tokenizer.encode(c)[0]]) for c in candidates]


def probe(model, tokenizer: Tokenizer, templates: Sequence[str], targets: Mapping[str, str],
          tail: str = " can") -> list[dict[str, object]]:
    """For each template and each target (name -> text, e.g. "she" -> " she"): the first token's
    probability, the log-probability of the whole target followed by ``tail``, and both as shares
    over the targets. One row per (template, target)."""
    rows = []
    names = list(targets)
    for template in templates:
        first = next_token_probs(model, tokenizer, template, [targets[n] for n in names])
        whole = continuation_logprobs(model, tokenizer, template, [targets[n] + tail for n in names])
        first_share = shares(dict(zip(names, first)))
        whole_p = [float(torch.tensor(w).exp()) for w in whole]
        whole_share = shares(dict(zip(names, whole_p)))
        for k, name in enumerate(names):
            rows.append({"template": template, "target": name, "first-token probability": first[k],
                         "first-token share": first_share[name], f"log P(word + '{tail.strip()}')": whole[k],
                         "whole-word share": whole_share[name]})
    return rows


def mean_shares(rows: Sequence[Mapping[str, object]], column: str) -> dict[str, float]:
    """target -> the mean of ``column`` over templates (rows from ``probe``)."""
    sums: dict[str, list[float]] = {}
    for row in rows:
        sums.setdefault(str(row["target"]), []).append(float(row[column]))  # type: ignore[arg-type]
    return {k: sum(v) / len(v) for k, v in sums.items()}


def log_ratios(rows: Sequence[Mapping[str, object]], a: str, b: str, column: str) -> dict[str, float]:
    """template -> log(P(a) / P(b)) in nats, read from the log-probability ``column`` of ``probe`` rows.

    0 means no preference; +2.3 means ``a`` is 10 times as likely as ``b``, −2.3 the reverse."""
    logp: dict[str, dict[str, float]] = {}
    for row in rows:
        logp.setdefault(str(row["template"]), {})[str(row["target"])] = float(row[column])  # type: ignore[arg-type]
    missing = [t for t, by in logp.items() if a not in by or b not in by]
    if missing:
        raise ConfigError(f"templates without both {a!r} and {b!r}: {missing[:3]}")
    return {t: by[a] - by[b] for t, by in logp.items()}
