"""Four tasks for a language model, each with data the course makes itself, a held-out test split and
an exact metric; the prompts that pose them; and the loop that asks the model and scores its answers.

| task | input → answer | held out by | metric |
| --- | --- | --- | --- |
| text generation | a line of Python's documentation, cut after a few words → the next word | module (the corpus's validation split) | exact match |
| translation | English number words, 1–999 → Chinese numerals | number | exact match, character error rate |
| question answering | "Which module defines `dumps`?" → `json` | entity (function or class name) | exact match |
| code generation | "the largest of 4, 9 and 2" → a Python expression | description | execution accuracy (run it), exact match |

Every answer is one short line. A prompt ends where the answer begins; the model continues it greedily
(the most likely token each time) until it writes a newline. "Held out" means that no test example —
not its number, not its function name, not its line of text — appears in the training split.

Modules, read in this order:
- ``numerals``: English number words and Chinese numerals (the translation task's data);
- ``sandbox``: ``safe_eval``, the whitelist interpreter that runs generated code;
- ``task_types``: ``Example``, ``Task`` and the four kinds of task (how each is posed and scored);
- ``knowledge_base``: the facts the question-answering task asks about, read from the standard library;
- ``task_data``: building the four tasks' train/test splits (``build_tasks``);
- ``prompting``: zero-shot and few-shot prompts within a token budget;
- ``answering``: batched greedy decoding until the stop newline (``generate_answers``);
- ``scoring``: ``evaluate`` and ``TaskEval`` (metrics, intervals, error analysis);
- ``metrics``, ``classify``, ``finetune``, ``plots``, ``exercises``: metrics with intervals (bootstrap, exact
  Clopper–Pearson, paired), the classifier head, fine-tuning (full, LoRA, and the randomly initialised control),
  the chapter's figures, the chapter's exercises;
- ``ngram_baseline``: the non-neural control for question answering (character n-grams, logistic regression).

This package may import ``roots_course.course``, ``roots_course.core``, ``roots_course.store`` and earlier chapters,
never a later chapter (``society`` may import it).
"""
