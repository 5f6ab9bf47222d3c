"""Files on disk, written so that nothing is ever half-written or silently damaged.

``atomic`` writes a file whole or not at all; ``artifacts`` knows where a profile keeps what it makes
(``artifacts/<profile>/``) and reads and writes JSON and safetensors through ``atomic``; ``integrity``
records a SHA-256 for every artifact in the profile's manifest and checks it on load; ``locking`` keeps two
processes from writing the same artifacts at once. Nothing here knows what a model is.

May import only the base modules (``roots_course.errors``, ``roots_course._offline``); every other layer
may import this one.
"""
