"""Sweeps: many runs of one base config over a grid and/or random search, one ranked answer.
``spec`` is the sweep file's format and its expansion into trials, ``sweepfile`` reads one;
``runner`` starts or resumes a sweep in its directory (``sweepdir``) and hands the trials to the
``driver`` or to an Optuna search (``optuna_search``, ``optuna_study``); ``backends`` run them
(local processes, Ray, Slurm via submitit); ``results`` ranks them and writes the summaries;
``tracking`` logs a sweep to MLflow.

May import: ``analysis``, ``execution`` and every package below them.

Nothing is imported here: a trial process (``python -m rnnlab.cli.trial``, the command line's
entry for one trial) must
reach its own first line quickly (see ``trial``)."""
