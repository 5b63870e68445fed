"""People's quality: test questions, qualification, each annotator's scores and flags, the guideline digest.

- :mod:`.test_questions`: items with known answers, added from a file or from experts' decisions, mixed into
  each annotator's queue at ``annotation.test_questions.rate`` and answered like any other item;
- :mod:`.qualification`: a new annotator's first round of test questions; until they pass, their answers are
  kept but do not count;
- :mod:`.scores`: per annotator accuracy on test questions (Wilson interval), kappa against consensus and
  experts, time, throughput, the trend, and who is flagged for retraining.
"""
