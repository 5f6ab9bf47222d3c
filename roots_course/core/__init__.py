"""The GPT itself, small enough to read in an afternoon: what chapters 1-3 open.

Read in this order: ``tokenizer`` (text to ids: the interface and the character tokenizer; ``bpe`` is
the from-scratch byte-pair encoder, ``fast_bpe`` the library one, ``tokenizer_kinds`` trains or loads
one by name), ``attention`` and ``model`` (the Transformer), ``train`` (the optimizer, schedule and
loop) with ``batches`` (windows of token ids, the validation loss), ``checkpoint`` (save and resume)
and ``progress`` (what a run prints), then ``generate`` (decoding). Around them: ``data`` (the corpora),
``stdlib_corpus`` (the default corpus, read from the running Python), ``corpus_split`` (how every
corpus is split and cached), ``grammar`` (a synthetic language of known entropy), ``lora`` (low-rank
fine-tuning), ``device`` (hardware, precision, seeds, threads), ``modes`` (evaluate, then restore the
training mode), ``distributed`` (several processes at once).

May import ``roots_course.store`` and the base modules, never ``course`` or a chapter.
"""
