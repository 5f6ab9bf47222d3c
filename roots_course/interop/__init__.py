"""The appendix, "Transformers": the course's models in the Hugging Face ``transformers`` format.

``export`` writes a course checkpoint and its tokenizer as a ``transformers`` model and checks that both
libraries compute the same logits; ``model_mapping`` says which ``transformers`` architecture expresses
which of our models and rearranges the weights; ``tokenizer_mapping`` turns our tokenizers into
``tokenizers`` objects that give the same ids; ``exercises`` holds the appendix's exercises.

May import ``roots_course.course``, ``roots_course.core``, ``roots_course.store``, the base modules and
every chapter; nothing in the course imports it.
"""
