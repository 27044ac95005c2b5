"""Looking at and across finished runs: ``rnnlab runs``/``compare`` (``compare``), overlaid
learning curves (``overlay``), ``rnnlab diff`` (``diff``), ``show``/``plot`` (``report``), gradient
flow through time (``gradflow``).

May import: ``execution`` and every package below it.
"""
