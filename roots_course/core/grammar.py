"""A probabilistic grammar of tiny English stories whose exact entropy is known.

Why a made-up corpus?  On real text nobody knows the best achievable loss, so a training curve can
only be compared with other curves.  On text drawn from this grammar we know the *floor*: the
entropy per character of the source.  A perfect model's cross-entropy equals it; every model's is at
least that.  The gap between the two is what is left to learn.

How the grammar is written.  A story is produced by walking a small state machine.  Each state
offers a few weighted options; an option writes a piece of text, may remember something (the hero's
kind, name, or the object found), and says which state comes next.  Some options are forced (one
option, probability 1): they write text that follows from what was said before.

    Once upon a time, there was a brave girl named Lily. She lived in a small village with her dog.
    One day, Lily found a red kite under the old tree. Later, she showed the kite to her friend the
    owl. In the end, Lily flew it over the hills, and she was very happy.

It carries long-range structure that a model with context can exploit and an n-gram cannot: the name
given in the first sentence comes back later; every pronoun agrees with the hero's kind (girl, boy,
princess...); princes and princesses live in castles more often; the ending depends on the object
found sentences earlier.

Why every story has exactly one derivation.  At every state no option's text is a prefix of another's
(up to a word boundary), and every option after the first starts with a space or punctuation.  So,
reading a story left to right, at each state at most one option can match: the parser never has to
guess (it is deterministic, with no backtracking), and two different walks always write different
strings.  `StoryGrammar()` checks this property on every reachable state when it is built.

Hence the probability of a story is the product of the probabilities of its choices, and

    H(story) = E[ sum over visited states of H(options of that state) ]

which we compute exactly by recursion over (state, context) with memoisation -- no enumeration of
stories.  The expected length is computed by the same recursion.  The machine has no cycles (the
number of middle sentences is capped), so the recursion terminates.

Units: `log_prob` returns a natural logarithm (nats); everything named `*_bits*` is in bits.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from roots_course.errors import DataError

SEPARATOR = "\n\n"  # between stories in a corpus; it contains no character a story can contain
MAX_EVENTS = 3  # at most this many middle sentences, so the state machine has no cycles

State = tuple[str, int]  # (name of the state, number of middle sentences told so far)
START: State = ("opening", 0)

# ---- word lists: (text, probability). Each list's probabilities sum to 1. ----------------------
ADJECTIVES = (
    ("a little", 0.25), ("a brave", 0.15), ("a curious", 0.15), ("a clever", 0.10),
    ("a kind", 0.10), ("a shy", 0.10), ("an honest", 0.08), ("an eager", 0.07),
)
KINDS = (  # (kind, gender, probability)
    ("girl", "f", 0.30), ("boy", "m", 0.30), ("princess", "f", 0.10),
    ("prince", "m", 0.10), ("witch", "f", 0.10), ("wizard", "m", 0.10),
)
ROYAL_KINDS = frozenset({"princess", "prince"})
NAMES = {
    "f": ("Lily", "Mia", "Anna", "Zoe", "Emma", "Rosa", "Nora", "Ella"),
    "m": ("Tom", "Ben", "Max", "Leo", "Sam", "Jack", "Finn", "Omar"),
}
CASTLE = "a castle on a hill"
OTHER_PLACES = (
    "a small village", "a big city", "a little house by the sea",
    "a cabin in the woods", "a mill near the river",
)
COMPANIONS = ("mom", "dad", "grandma", "grandpa", "dog", "cat")
COLORS = ("red", "blue", "green", "yellow", "golden", "tiny")
OBJECTS = ("key", "kite", "seed", "map", "lamp", "ball", "shell", "feather")
PREPOSITIONS = (("under", 0.4), ("behind", 0.3), ("near", 0.3))
SPOTS = ("old tree", "big rock", "bridge", "bench", "gate")
EVENT_PROB = 0.15  # each of the four middle-sentence templates; the ending gets the rest (0.4)
FRIENDS = ("owl", "frog", "bear", "mouse", "duck")
VERBS = ("held", "cleaned", "hid", "carried")
ADVERBS = ("carefully", "gently", "proudly", "quietly")
WHERE = ("park", "market", "school", "beach")
ENDINGS = {  # object -> (likely ending, unlikely ending), probabilities 0.7 and 0.3
    "key": ("opened a secret door", "gave it to the king"),
    "kite": ("flew it over the hills", "gave it to a little bird"),
    "seed": ("planted it in the garden", "gave it to a farmer"),
    "map": ("followed it to a hidden lake", "drew a new map"),
    "lamp": ("lit it in a dark cave", "read a book by its light"),
    "ball": ("played with it in the park", "threw it to a happy dog"),
    "shell": ("heard the sea inside it", "put it on a shelf"),
    "feather": ("wrote a letter with it", "put it in a hat"),
}
FEELINGS = (("was very happy", 0.4), ("felt proud", 0.2), ("smiled", 0.2), ("laughed", 0.2))

_GENDER = {kind: gender for kind, gender, _ in KINDS}


@dataclass(frozen=True)
class Context:
    """What the story has fixed so far and later sentences must agree with."""

    kind: str = ""
    name: str = ""
    obj: str = ""

    @property
    def she(self) -> str:
        return "she" if _GENDER[self.kind] == "f" else "he"

    @property
    def her(self) -> str:
        return "her" if _GENDER[self.kind] == "f" else "his"


@dataclass(frozen=True)
class Option:
    """One weighted option of a state: the text it writes, what it remembers, where it goes."""

    text: str
    prob: float
    next: State | None  # None: the story ends
    remember: tuple[tuple[str, str], ...] = ()  # Context fields to set, e.g. (("name", "Lily"),)


@dataclass(frozen=True)
class Choice:
    """A choice made while writing (or reading) a story: the state, the option's text, its prob."""

    state: State
    text: str
    prob: float


def _uniform(texts: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    return tuple((t, 1.0 / len(texts)) for t in texts)


def _is_word_prefix(a: str, b: str) -> bool:
    """True if `a` could match where `b` is written: b starts with a, at a word boundary."""
    if not b.startswith(a):
        return False
    if len(a) == len(b):
        return True
    return not (a[-1].isalnum() and b[len(a)].isalnum())


def _matches(story: str, pos: int, text: str) -> bool:
    """Does `text` occur in `story` at `pos`, ending at a word boundary?"""
    if not story.startswith(text, pos):
        return False
    end = pos + len(text)
    return not (text[-1].isalnum() and end < len(story) and story[end].isalnum())


class StoryGrammar:
    """The story grammar: sample stories, parse them back, and know their exact entropy."""

    separator: str = SEPARATOR

    def __init__(self) -> None:
        self._options_cache: dict[tuple[State, Context], tuple[Option, ...]] = {}
        self._expect_cache: dict[tuple[State, Context], tuple[float, float]] = {}
        # Walk every reachable state once: checks the grammar and fills the expectation table.
        self._story_bits, self._story_chars = self._expect(START, Context())

    # ---- the state machine ------------------------------------------------------------------
    def options(self, state: State, ctx: Context) -> tuple[Option, ...]:
        """The options offered in `state`, given what the story has fixed so far (memoised)."""
        key = (state, ctx)
        if key not in self._options_cache:
            self._options_cache[key] = tuple(self._build_options(state, ctx))
        return self._options_cache[key]

    def _build_options(self, state: State, ctx: Context) -> list[Option]:
        name, k = state
        she, her = ctx.she if ctx.kind else "", ctx.her if ctx.kind else ""
        if name == "opening":
            return [Option(f"Once upon a time, there was {adj}", p, ("kind", 0))
                    for adj, p in ADJECTIVES]
        if name == "kind":
            return [Option(f" {kind}", p, ("name", 0), (("kind", kind),)) for kind, _, p in KINDS]
        if name == "name":
            names = NAMES[_GENDER[ctx.kind]]
            return [Option(f" named {n}.", p, ("home", 0), (("name", n),))
                    for n, p in _uniform(names)]
        if name == "home":  # royals live in castles more often: a dependency on the hero's kind
            castle_p = 0.5 if ctx.kind in ROYAL_KINDS else 0.05
            other_p = (1.0 - castle_p) / len(OTHER_PLACES)
            places = [(CASTLE, castle_p)] + [(pl, other_p) for pl in OTHER_PLACES]
            return [Option(f" {she.capitalize()} lived in {pl}", p, ("company", 0))
                    for pl, p in places]
        if name == "company":
            alone = [Option(".", 0.4, ("color", 0))]
            return alone + [Option(f" with {her} {c}.", 0.1, ("color", 0)) for c in COMPANIONS]
        if name == "color":
            return [Option(f" One day, {ctx.name} found a {c}", p, ("object", 0))
                    for c, p in _uniform(COLORS)]
        if name == "object":
            return [Option(f" {o}", p, ("preposition", 0), (("obj", o),))
                    for o, p in _uniform(OBJECTS)]
        if name == "preposition":
            return [Option(f" {w} the", p, ("spot", 0)) for w, p in PREPOSITIONS]
        if name == "spot":
            return [Option(f" {s}.", p, ("event", 0)) for s, p in _uniform(SPOTS)]
        if name == "event":  # a middle sentence (at most MAX_EVENTS of them) or the ending
            ending = Option(f" In the end, {ctx.name}", 1.0, ("ending", 0))
            if k >= MAX_EVENTS:
                return [ending]
            o = ctx.obj
            return [
                Option(f" Later, {she} showed the {o} to {her} friend the", EVENT_PROB,
                       ("friend", k)),
                Option(f" Every day, {she}", EVENT_PROB, ("verb", k)),
                Option(f" At night, {ctx.name} dreamed about the {o}.", EVENT_PROB,
                       ("event", k + 1)),
                Option(f" Then {she} took the {o} to the", EVENT_PROB, ("where", k)),
                replace(ending, prob=1.0 - 4 * EVENT_PROB),
            ]
        if name == "friend":
            return [Option(f" {f}.", p, ("event", k + 1)) for f, p in _uniform(FRIENDS)]
        if name == "verb":
            return [Option(f" {v} the {ctx.obj}", p, ("adverb", k)) for v, p in _uniform(VERBS)]
        if name == "adverb":
            return [Option(f" {a}.", p, ("event", k + 1)) for a, p in _uniform(ADVERBS)]
        if name == "where":
            return [Option(f" {w}.", p, ("event", k + 1)) for w, p in _uniform(WHERE)]
        if name == "ending":  # depends on the object found sentences earlier
            likely, unlikely = ENDINGS[ctx.obj]
            return [Option(f" {likely},", 0.7, ("feeling", 0)),
                    Option(f" {unlikely},", 0.3, ("feeling", 0))]
        if name == "feeling":
            return [Option(f" and {she} {f}.", p, None) for f, p in FEELINGS]
        raise KeyError(f"unknown grammar state {state!r}")

    @staticmethod
    def _advance(ctx: Context, option: Option) -> Context:
        return replace(ctx, **dict(option.remember)) if option.remember else ctx

    # ---- sampling and parsing -----------------------------------------------------------------
    def sample_with_choices(self, rng: random.Random) -> tuple[str, list[Choice]]:
        """Write one story; also return the choices made (states with a single option omitted)."""
        state: State | None = START
        ctx = Context()
        pieces: list[str] = []
        choices: list[Choice] = []
        while state is not None:
            opts = self.options(state, ctx)
            if len(opts) == 1:
                option = opts[0]
            else:
                option = rng.choices(opts, weights=[o.prob for o in opts])[0]
                choices.append(Choice(state, option.text, option.prob))
            pieces.append(option.text)
            ctx = self._advance(ctx, option)
            state = option.next
        return "".join(pieces), choices

    def sample(self, rng: random.Random) -> str:
        """One story, without the separator."""
        return self.sample_with_choices(rng)[0]

    def parse(self, story: str) -> list[Choice]:
        """Read a story back into its (unique) list of choices; DataError if it is not a story."""
        state: State | None = START
        ctx = Context()
        pos = 0
        choices: list[Choice] = []
        while state is not None:
            opts = self.options(state, ctx)
            found = [o for o in opts if _matches(story, pos, o.text)]
            if not found:
                expected = ", ".join(repr(o.text) for o in opts[:6])
                raise DataError(
                    f"not a story of this grammar: at character {pos} the text "
                    f"{story[pos:pos + 30]!r} matches none of the options of state "
                    f"{state[0]!r} ({expected}{', ...' if len(opts) > 6 else ''})"
                )
            # __init__ checked that options are prefix-free, so at most one can match.
            option = found[0]
            if len(opts) > 1:
                choices.append(Choice(state, option.text, option.prob))
            pos += len(option.text)
            ctx = self._advance(ctx, option)
            state = option.next
        if pos != len(story):
            raise DataError(
                f"not a story of this grammar: the story is complete at character {pos} but "
                f"{story[pos:pos + 30]!r} follows (pass one story at a time, without the separator)"
            )
        return choices

    def log_prob(self, story: str) -> float:
        """Natural logarithm of the probability of `story` (sum of the log-probs of its choices)."""
        return sum(math.log(c.prob) for c in self.parse(story))

    def surprisal_bits(self, story: str) -> float:
        """-log2 p(story): the bits an ideal code spends on this story."""
        return -self.log_prob(story) / math.log(2)

    # ---- exact expectations -------------------------------------------------------------------
    def _expect(self, state: State, ctx: Context) -> tuple[float, float]:
        """(expected bits, expected characters) still to come from `state` in context `ctx`.

        bits(s) = sum_o p_o * (-log2 p_o + bits(next_o)),  chars(s) = sum_o p_o * (len_o + chars(next_o)).
        Each (state, context) pair is solved once; the recursion also validates the grammar.
        """
        key = (state, ctx)
        if key in self._expect_cache:
            return self._expect_cache[key]
        opts = self.options(state, ctx)
        self._check_state(state, opts)
        bits = chars = 0.0
        for o in opts:
            nxt_bits, nxt_chars = (0.0, 0.0) if o.next is None else \
                self._expect(o.next, self._advance(ctx, o))
            bits += o.prob * (-math.log2(o.prob) + nxt_bits)
            chars += o.prob * (len(o.text) + nxt_chars)
        self._expect_cache[key] = (bits, chars)
        return bits, chars

    @staticmethod
    def _check_state(state: State, opts: tuple[Option, ...]) -> None:
        """Probabilities sum to 1 and no option can be mistaken for another while parsing."""
        total = sum(o.prob for o in opts)
        if abs(total - 1.0) > 1e-9 or any(o.prob <= 0 for o in opts):
            raise RuntimeError(f"grammar bug: state {state} has probabilities summing to {total}")
        for o in opts:
            if not o.text or ("\n" in o.text):
                raise RuntimeError(f"grammar bug: state {state} has option {o.text!r}")
            if state != START and o.text[0].isalnum():
                raise RuntimeError(f"grammar bug: {o.text!r} in {state} must start at a boundary")
        for i, a in enumerate(opts):
            for b in opts[i + 1:]:
                if _is_word_prefix(a.text, b.text) or _is_word_prefix(b.text, a.text):
                    raise RuntimeError(
                        f"grammar bug: in state {state}, {a.text!r} and {b.text!r} are ambiguous"
                    )

    def entropy_bits_per_story(self) -> float:
        """H(story) in bits: exact, by recursion over the state machine."""
        return self._story_bits

    def expected_chars_per_story(self) -> float:
        """E[characters per story], counting the separator that follows each story in a corpus."""
        return self._story_chars + len(self.separator)

    def entropy_bits_per_char(self) -> float:
        """The floor of a character-level model's loss, in bits per character of the corpus text.

        For a long stream of independent stories this is H(story) / E[chars incl. separator]
        (renewal-reward theorem): the best possible average code length per character.
        """
        return self.entropy_bits_per_story() / self.expected_chars_per_story()

    def num_states(self) -> int:
        """How many (state, context) pairs are reachable (all of them were checked)."""
        return len(self._expect_cache)
