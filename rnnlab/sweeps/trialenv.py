"""How a sweep tells a trial process (``trial``) the ways it is stopped: environment variables that
``backends`` sets and ``trial`` reads. A module of its own, so ``backends`` need not import the trial's
entry point (which imports the command line)."""

STOP_FILE_ENV = "RNNLAB_SWEEP_STOP_FILE"  # stop files, os.pathsep-separated: the trial stops once one exists
PARENT_ENV = "RNNLAB_SWEEP_PARENT"  # the pid whose exit interrupts the trial (Linux)
# ``python -m TRIAL_MODULE ARGS``: one trial (``rnnlab train ARGS``, stoppable)
TRIAL_MODULE = "rnnlab.cli.trial"
SERVE = "--serve"  # ``python -m TRIAL_MODULE --serve``: the preloaded launcher (``sweeps.forking``)
