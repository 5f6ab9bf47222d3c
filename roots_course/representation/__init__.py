"""Chapter 1, "Representation": how text becomes numbers a Transformer can use.

``token_stats`` measures tokenizers (tokens per text, the pieces, Zipf's law); ``embeddings`` looks into
the embedding table; ``positions`` shows why a Transformer needs positions (a permutation test);
``attention_steps`` and ``worked_example`` compute self-attention one step at a time; ``plots`` draws the
chapter's figures; ``exercises`` holds its exercises.

May import ``roots_course.course``, ``roots_course.core``, ``roots_course.store`` and the base modules;
being the first chapter, no other chapter.
"""
