"""The bottom layer: what every other package uses and that knows nothing of tasks, models or
training. Reading user files without trusting them (``safeio``), the output-path rule (``outputs``),
the console and progress display (``console``), signals, how this process was invoked
(``invocation``), the allocator setting, small statistics, headless figures (``plots``).

May import: ``rnnlab.errors``, ``rnnlab.registry`` and ``rnnlab.common`` only.
"""
