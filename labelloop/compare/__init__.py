"""Comparing variants of a task (prompts, models, rules, thresholds) on gold items, with paired tests that say
whether a difference is real. Needs the ``agree`` extra (scipy, scikit-learn, statsmodels).

:mod:`.significance`: McNemar's mid-p test, the paired bootstrap, the gold items a difference needs, verdicts.
"""
