"""Chapter 5, "Society": what the course's language models do to the world, measured on them.

One module per concept; this package also gathers their public names, so that the chapter can write
``from roots_course import society as soc`` and find everything (importing a module directly, as
``from roots_course.society import cost``, works too):

| module | measures |
| --- | --- |
| ``memorization`` | verbatim overlap with the training split (an n-gram index), duplication across the split, extraction, membership inference (ROC, AUC) |
| ``bias`` | pronoun counts and co-occurrences in the corpus; the model's probabilities after probe templates, and their per-template log-ratios |
| ``cost`` | FLOPs of every recorded run, wall time, device; energy and carbon under stated assumptions; published figures |
| ``datasheet`` | where the corpus comes from, its license, its size and composition, computed from the data |
| ``model_card`` | a Markdown card per trained model, assembled from the manifest, checkpoints and metrics |
| ``fabrication`` | invented APIs and confident wrong answers, checked against the running Python; confidence over a closed set of labels and temperature scaling |
| ``plots`` | the chapter's figures (not gathered here) |
| ``exercises`` | the chapter's exercises (not gathered here) |

May import ``roots_course.course``, ``roots_course.core``, ``roots_course.store``, the base modules and
the earlier chapters, never ``interop``. Its modules import each other by module
(``from roots_course.society import cost``), never through the names gathered here.
"""

from __future__ import annotations

from roots_course.society import bias, cost, datasheet, fabrication, memorization, model_card
from roots_course.society.bias import PRONOUNS, ROLE_NOUNS, cooccurrence, keyword_in_context, log_ratios, probe, pronoun_counts
from roots_course.society.cost import PUBLISHED, ForwardMeter, carbon_kg, energy_kwh, estimate, recorded_runs
from roots_course.society.datasheet import datasheet as compute_datasheet
from roots_course.society.datasheet import datasheet_markdown
from roots_course.society.fabrication import (answers_with_confidence, classifier_logits, complete_apis,
                                              expected_calibration_error, fit_temperature, label_confidence,
                                              label_logprobs, reliability)
from roots_course.society.memorization import NgramIndex, TrainingIndex, auc, extract, ngram_overlap, roc_curve, window_losses
from roots_course.society.model_card import SECTIONS, build_cards, missing_sections, write_cards

__all__ = [
    "bias", "cost", "datasheet", "fabrication", "memorization", "model_card",
    "PRONOUNS", "ROLE_NOUNS", "cooccurrence", "keyword_in_context", "log_ratios", "probe", "pronoun_counts",
    "PUBLISHED", "ForwardMeter", "carbon_kg", "energy_kwh", "estimate", "recorded_runs",
    "compute_datasheet", "datasheet_markdown",
    "answers_with_confidence", "classifier_logits", "complete_apis", "expected_calibration_error",
    "fit_temperature", "label_confidence", "label_logprobs", "reliability",
    "NgramIndex", "TrainingIndex", "auc", "extract", "ngram_overlap", "roc_curve", "window_losses",
    "SECTIONS", "build_cards", "missing_sections", "write_cards",
]
