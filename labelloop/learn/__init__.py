"""The flywheel (extra ``embed``): people's labels make the system cheaper and better each round.

- :mod:`.embed`: item embeddings, stored once per model (bundled all-MiniLM-L6-v2, any
  sentence-transformers model, or an OpenAI-compatible ``/v1/embeddings`` endpoint);
- :mod:`.fewshot`: the nearest people-labeled items as few-shot examples in each prompt;
- :mod:`.small`: the small model (embeddings + logistic regression), cross-validated and calibrated;
- :mod:`.calibrate`: isotonic/Platt calibration, ECE, reliability plots, thresholds with a
  Clopper-Pearson precision guarantee;
- :mod:`.active`: the next items for people, by uncertainty x diversity and labeler disagreement;
- :mod:`.loop`: the same inside a project (train, calibrate, cross-check, crossover);
- :mod:`.simulate`, :mod:`.replay`, :mod:`.report`: what a target accuracy costs in human work.
"""
