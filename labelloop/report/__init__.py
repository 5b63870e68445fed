"""``labelloop report``: one self-contained HTML page about a project, for someone who never ran the tool
(needs the ``agree`` extra: matplotlib, scipy, scikit-learn).

- :mod:`.facts`: everything the page shows, read from the store once (:func:`gather`);
- :mod:`.timeline`: events over time, bucketed to the project's own time scale;
- :mod:`.people`: reviewers, agreement over time, disputes settled;
- :mod:`.plots`: the SVG plots; :mod:`.page`: the page (:func:`write_report`).
"""

from .facts import ProjectReport, gather
from .page import render, write_report

__all__ = ["ProjectReport", "gather", "render", "write_report"]
