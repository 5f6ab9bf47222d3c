"""Chapter 2, "Optimization": the training objective and how the loss falls.

``objective`` is the loss and the units it is quoted in (nats, bits, perplexity); ``ngram`` the n-gram
baselines a neural model has to beat; ``experiments`` small training runs side by side; ``scaling`` a
small scaling study; ``plots`` the chapter's own figure; ``exercises`` its exercises.

May import ``roots_course.course``, ``roots_course.core``, ``roots_course.store``, the base modules and
chapter 1 (``representation``), never a later chapter.
"""
