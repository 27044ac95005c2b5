"""``python -m rnnlab`` for torchrun tests, then the threads this process still runs, on stderr.

gloo's worker threads must be gone once ``rnnlab train`` returns: one still alive when the
interpreter shuts down can abort the process (see ``rnnlab.execution.distributed.init_group``)."""

import os
import runpy
import sys

code = 0
try:
    runpy.run_module("rnnlab", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
tasks = "/proc/self/task"  # Linux; elsewhere the threads are not listed
names = (sorted(open(f"{tasks}/{t}/comm").read().strip() for t in os.listdir(tasks))
         if os.path.isdir(tasks) else [])
print(f"rank {os.environ.get('RANK')} threads: {' '.join(names)}", file=sys.stderr)
sys.exit(code)
