"""One training loop for every task (``trainer``) and what it is made of: the loop's state
(``state``), budgets, precision, optimizers and schedules (``optim``), device, threads and seeds
(``runtime``), resource limits, building the task and model from a config (``build``), evaluation,
how training stops early (``stops``), and the run summary's fields (``summary``).

May import: ``models``, ``tasks``, ``rundir``, ``config``, ``common``.
"""
