"""The one output-path rule (``rnnlab/outputs.py``) for every ``--out``: never the input file,
never a file inside a run directory, never silently over an existing file (``--force`` replaces),
no temp file left behind, and errors naming the user's path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.outputs import OutputError, check_outputs

from .test_series import toy

runner = CliRunner()


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [x for x in result.stderr.splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert ".tmp" not in lines[0] and "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("outputs_run")
    data = toy(root, 200)
    cfg = root / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "task": {"name": "series", "lookback": 24, "horizon": 6},
        "data": {"path": str(data), "time_column": "date"}, "model": {"name": "linear"},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 32, "seed": 0, "threads": 1},
        "logging": {"plots": False}}))
    result = runner.invoke(app, ["train", str(cfg), "--runs-dir", str(root / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1]), data


def test_forecast_out_over_its_input_is_refused_and_the_input_kept(series_run, tmp_path: Path) -> None:
    run, _ = series_run
    data = toy(tmp_path, 60, "x.csv")
    before = digest(tmp_path)
    for extra in ([], ["--force"]):  # not even with --force
        line = one_line_error(runner.invoke(
            app, ["forecast", str(run), "--file", str(data), "--out", str(data), *extra]))
        assert f"--out: {data}" in line and "reads" in line
    # the plot would go beside the CSV as x.png: an --out of x.png would put it over the CSV
    line = one_line_error(runner.invoke(
        app, ["forecast", str(run), "--file", str(data), "--out", str(tmp_path / "same.png")]))
    assert "same file" in line
    assert digest(tmp_path) == before


def test_forecast_refuses_an_existing_file_unless_force(series_run, tmp_path: Path) -> None:
    run, _ = series_run
    data = toy(tmp_path, 60, "recent.csv")
    out = tmp_path / "fc.csv"
    out.write_text("mine\n")
    line = one_line_error(runner.invoke(app, ["forecast", str(run), "--file", str(data), "--out", str(out)]))
    assert line == f"error: --out: {out}: already exists; give --force to replace it"
    assert out.read_text() == "mine\n"
    (tmp_path / "fc2.png").write_text("plot")  # the plot beside it counts too
    line = one_line_error(runner.invoke(
        app, ["forecast", str(run), "--file", str(data), "--out", str(tmp_path / "fc2.csv")]))
    assert "fc2.png" in line and not (tmp_path / "fc2.csv").exists()
    result = runner.invoke(app, ["forecast", str(run), "--file", str(data), "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("date,a,b") and out.with_suffix(".png").stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_no_output_inside_a_run_directory(series_run, tmp_path: Path) -> None:
    run, _ = series_run
    data = toy(tmp_path, 60, "recent.csv")
    before = digest(run)
    line = one_line_error(runner.invoke(
        app, ["forecast", str(run), "--file", str(data), "--out", str(run / "summary.csv")]))
    assert "inside the run directory" in line
    ckpt = run / "checkpoints" / "best.pt"
    for extra in ([], ["--force"]):
        line = one_line_error(runner.invoke(
            app, ["export", str(run), "--format", "torchscript", "--out", str(ckpt), *extra]))
        assert str(ckpt) in line
    assert digest(run) == before
    # the default RUN/export/ is the run's own export folder: written, and replaced on a rerun
    for _ in range(2):
        result = runner.invoke(app, ["export", str(run), "--format", "torchscript"])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "export").iterdir()) == ["model_best.pt", "model_best.pt.json"]


def test_export_to_an_existing_directory_leaves_no_temp_file(series_run, tmp_path: Path) -> None:
    run, _ = series_run
    folder = tmp_path / "out"
    folder.mkdir()
    line = one_line_error(runner.invoke(app, ["export", str(run), "--format", "torchscript",
                                              "--out", str(folder)]))
    assert line == f"error: --out: {folder}: is a directory; give a file name"
    assert list(tmp_path.rglob("*")) == [folder]
    target = tmp_path / "m.pt"
    target.write_bytes(b"old")
    line = one_line_error(runner.invoke(app, ["export", str(run), "--format", "torchscript",
                                              "--out", str(target)]))
    assert "already exists" in line and target.read_bytes() == b"old"
    result = runner.invoke(app, ["export", str(run), "--format", "torchscript", "--out", str(target),
                                 "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.pt.json", "out"]


def test_gradflow_out_follows_the_rule(series_run, tmp_path: Path) -> None:
    run, _ = series_run
    line = one_line_error(runner.invoke(app, ["gradflow", str(run), "--out", str(run / "plots" / "g.png")]))
    assert "inside the run directory" in line
    (tmp_path / "g.csv").write_text("x")
    line = one_line_error(runner.invoke(app, ["gradflow", str(run), "--out", str(tmp_path / "g.png")]))
    assert "g.csv" in line and "--force" in line


def test_unwritable_folder_names_the_users_path(tmp_path: Path) -> None:
    from rnnlab.common.outputs import temp_path

    target = tmp_path / "missing" / "m.onnx"
    with pytest.raises(OutputError) as err:
        with temp_path(target) as tmp:
            tmp.write_bytes(b"x")
    assert err.value.line().startswith(f"--out: {target}: cannot write") and ".tmp" not in err.value.line()
    with pytest.raises(OutputError, match="is the file this command reads"):
        check_outputs([tmp_path / "a" / ".." / "in.csv"], inputs=[tmp_path / "in.csv"])


def test_an_out_without_a_file_name_is_refused_as_the_directory_it_names() -> None:
    """``export --out .`` named its sidecar with ``Path('.').with_name(...)``: a ValueError traceback
    (found by the fuzzer); forecast and gradflow's ``with_suffix`` likewise."""
    from rnnlab.common.outputs import OutputError, with_companion

    for path in (".", "..", "/", "runs/.."):
        with pytest.raises(OutputError, match="is a directory; give a file name"):
            with_companion(Path(path), ".png")
    assert with_companion(Path("m.onnx"), add=".json") == [Path("m.onnx"), Path("m.onnx.json")]
    assert with_companion(Path("f.csv"), ".png") == [Path("f.csv"), Path("f.png")]
