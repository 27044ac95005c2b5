"""Start-up stays cheap (issue 25, item 6): the command line imports neither torch nor matplotlib
before a command needs them, and training never imports torch._dynamo (seconds of start-up) while
the optimizers compute exactly what torch's own do."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from rnnlab.training.optim import eager

from .conftest import REPO, SINE_TINY

HEAVY = ("torch", "torch._dynamo", "matplotlib", "mlflow", "optuna", "tensorboard", "onnx")


def loaded_after(code: str) -> dict[str, bool]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_import_and_help_load_no_heavy_module() -> None:
    code = ("import sys, contextlib, io\nimport rnnlab.cli\nsys.argv = ['rnnlab', '--help']\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    rnnlab.cli.app(prog_name='rnnlab')")
    loaded = loaded_after(code)
    assert not any(loaded.values()), {m for m, yes in loaded.items() if yes}


def test_training_never_imports_dynamo(tmp_path) -> None:
    cfg = dict(SINE_TINY, train=dict(SINE_TINY["train"], epochs=2, optimizer="adam"))
    code = (f"import rnnlab\nrun = rnnlab.train({cfg!r}, runs_dir={str(tmp_path)!r})\n"
            "assert run.summary['status'] == 'completed', run.summary")
    loaded = loaded_after(code)
    assert loaded["torch"] and not loaded["torch._dynamo"]


@pytest.mark.parametrize("cls,kwargs", [(torch.optim.Adam, {"fused": True}), (torch.optim.Adam, {}),
                                        (torch.optim.AdamW, {"fused": True}),
                                        (torch.optim.SGD, {"momentum": 0.9})])
def test_eager_optimizer_steps_exactly_as_torch(cls, kwargs) -> None:
    """Same parameters, state and state_dict round trip as the stock class, step by step."""
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(3)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(4)]
    finals = []
    for klass in (cls, eager(cls)):
        params = [p.clone().requires_grad_() for p in start]
        opt = klass(params, lr=0.01, weight_decay=0.01, **kwargs)
        for step_grads in grads:
            opt.zero_grad()
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            opt.step()
        copy = klass([p.detach().clone().requires_grad_() for p in params], lr=0.01, **kwargs)
        copy.load_state_dict(opt.state_dict())
        assert copy.param_groups[0]["weight_decay"] == 0.01
        finals.append([p.detach() for p in params])
    assert eager(cls).__name__ == cls.__name__ and issubclass(eager(cls), cls)
    for a, b in zip(*finals):
        assert torch.equal(a, b)
