"""Sweeps: many runs of one base config over a grid and/or random search, one ranked answer.
``spec`` reads and expands sweep files, ``runner`` runs the trials (``backends``: local processes
or Ray; ``trial``: each trial's entry point), ``results`` ranks them and writes the summaries.

Nothing is imported here: a trial process starts with ``python -m rnnlab.sweeps.trial`` and must
reach its own first line quickly (see ``trial``)."""
