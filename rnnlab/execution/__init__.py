"""A run from config to closed run directory: the checks before anything is written, the run
directory, the trainer, trackers and final outputs (``lifecycle``); ``--resume`` (``resume``); the
same under torchrun (``distributed``, imported only there); ``launch`` chooses between the two.
Inference from a run directory (``inference``): ``generate``, ``predict``, ``forecast``.

May import: ``integrations``, ``training``, ``models``, ``tasks``, ``rundir``, ``config``, ``common``.
"""
