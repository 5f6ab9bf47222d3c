"""Chapter 3, "Output": from next-token probabilities to text.

``decoding_study`` runs every decoding strategy of ``roots_course.core.generate`` on the same prompts;
``decoding_metrics`` the numbers that describe them (the spread of the next-token distribution,
repetition and distinct n-grams, whether written code parses); ``plots`` the
chapter's figures; ``exercises`` its exercises.

May import ``roots_course.course``, ``roots_course.core``, ``roots_course.store``, the base modules and
the earlier chapters (``representation``, ``optimization``), never a later one.
"""
