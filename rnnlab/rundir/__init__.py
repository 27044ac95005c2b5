"""The run directory, the unit of truth, as files: ids and creation, atomic writes, locking,
reading ``summary.json``/``metrics.jsonl`` back strictly (``readback``), checkpoints that know their
run (``identity``).

May import: ``config``, ``common``.
"""
