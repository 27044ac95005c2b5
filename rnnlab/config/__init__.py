"""The config contract: the typed sections (``schema``), YAML loading, overrides and validation
into an ``Experiment`` (``loading``), the run-name rule (``names``) and finding/loading users'
plugins (``plugins``). Names of tasks, models, optimizers and schedulers are checked against the
registries (``rnnlab.registry``), which import their built-in entries on first read.

May import: ``common`` (and ``rnnlab.errors``, ``rnnlab.registry``).
"""
