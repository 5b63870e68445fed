"""Watching labels arrive over months: the drift alarm (needs the ``agree`` extra).

:mod:`.drift`: the statistics of one batch against a reference, each with its threshold.
"""
