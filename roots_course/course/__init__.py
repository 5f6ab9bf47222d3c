"""What turns the core into a course: profiles, the shared pretrained model, and each chapter's set-up.

``config`` reads the profiles (smoke, cpu, gpu) from the top-level ``_config.yml`` into typed objects;
``pretraining`` runs the course model's pretraining once per profile and keeps every step in
``artifacts/<profile>/``; ``chapter`` is what every notebook calls first; ``exercises`` checks a reader's
answer to an exercise against a reference; ``plots`` holds the figure helpers every chapter shares (one look for all); ``doctor`` says what is
wrong with a set-up.

May import ``roots_course.core``, ``roots_course.store`` and the base modules, never a chapter.
"""
