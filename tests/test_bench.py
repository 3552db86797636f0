import json
from pathlib import Path

import pytest

from iau_cli.recipes.bench import BenchConfig, MethodEntry, Workload, run_bench, validate_shape

from .conftest import digits_config, write_yaml
from .helpers import assert_bad_input, run_cli


def tiny_bench(tmp_path: Path) -> Path:
    write_yaml(tmp_path / "run.yaml", digits_config(epochs=2, gr_alpha=0.005))
    config = tmp_path / "bench.yaml"
    config.write_text(
        "workloads:\n  - {name: tiny, config: run.yaml}\n"
        "methods:\n"
        "  - {label: original, method: original}\n"
        "  - {label: retrain, method: retrain}\n"
        "  - {label: iau, method: iau}\n"
        "  - {label: iau adam-sign, method: iau, options: {rule: adam-sign}}\n"
        "  - {label: exact, method: influence, options: {solver: exact, max_parameters: 10}}\n"
        "ratios: [0.05]\nseeds: 1\n"
    )
    return config


def test_bench_json_shape_resume_and_refusals(tmp_path: Path) -> None:
    config = tiny_bench(tmp_path)
    out = tmp_path / "out"
    first = run_cli(
        "bench", config, "--out", out, "--json", tmp_path / "bench.json", "--markdown", tmp_path / "bench.md", "-q"
    )
    assert first.exit_code == 0, first.stderr
    payload = json.loads((tmp_path / "bench.json").read_text())
    assert validate_shape(payload) == []
    assert payload["skipped"] == 0 and len(payload["runs"]) == 5
    by_label = {r["label"]: r for r in payload["runs"]}
    # A retrain row says how many epochs it ran (its time follows them: issue 22's timing puzzle).
    assert by_label["retrain"]["details"]["epochs_run"] == 2
    retrain_summary = next(s for s in payload["summary"] if s["label"] == "retrain")
    assert retrain_summary["epochs_run"]["mean"] == 2
    assert "epochs each retrain ran" in (tmp_path / "bench.md").read_text()
    iau = by_label["iau"]
    assert iau["status"] == "ok" and iau["details"]["rule"] == "targeted"  # the bench's originals carry targets
    assert iau["rte"] == pytest.approx(iau["retrain_seconds"] / iau["seconds"])  # (2 epochs: retraining is quick)
    assert by_label["exact"]["status"].startswith("refused:")
    markdown = (tmp_path / "bench.md").read_text()
    assert "| iau |" in markdown
    # The --markdown copy carries the record, as every report does; the JSON's record lists its digest.
    assert "Record" in markdown and payload["record"]["inputs"]["config"]["sha256"] in markdown
    assert str(tmp_path / "bench.md") in payload["record"]["outputs"]
    assert len((out / "runs.jsonl").read_text().splitlines()) == 5
    second = run_cli("bench", config, "--out", out, "--json", "-", "-q")
    again = json.loads(second.stdout)
    assert again["skipped"] == 5
    assert [r["key"] for r in again["runs"]] == [r["key"] for r in payload["runs"]]


def test_shape_validator_catches_missing_and_mistyped_fields() -> None:
    problems = validate_shape(
        {"out": 1, "config": {}, "runs": [{"key": "k"}], "summary": [], "targets": [], "interrupted": False}
    )
    assert "$.out: expected str, got int" in problems
    assert "$.skipped: missing" in problems
    assert any(p.startswith("$.runs[0].workload") for p in problems)


def test_an_interrupted_bench_keeps_what_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iau_cli.core.methods import iau as iau_method

    write_yaml(tmp_path / "run.yaml", digits_config(epochs=2))
    config = BenchConfig(
        workloads=[Workload("tiny", str(tmp_path / "run.yaml"))],
        methods=[MethodEntry("original", "original"), MethodEntry("iau", "iau"), MethodEntry("retrain", "retrain")],
        ratios=[0.05],
        seeds=1,
    )

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the iau cell runs

    monkeypatch.setattr(iau_method, "run", interrupted)  # the catalog's entry point, resolved per call
    result = run_bench(config, tmp_path / "out")
    assert result.interrupted
    finished = [json.loads(line)["label"] for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert finished == ["retrain", "original"]  # retraining runs first; the iau cell never finished
    assert [s["label"] for s in result.summary] == ["retrain", "original"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "is a folder"), (b"seeds: 1\n\xff\xfe\n", "not UTF-8"), (b"- a\n- b\n", "top level must be a mapping")],
)
def test_a_bench_config_that_cannot_be_read_is_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bench.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert_bad_input(run_cli("bench", path, "--out", tmp_path / "out"), message, str(path))


def test_gaps_of_opposite_signs_do_not_cancel_in_the_targets() -> None:
    from iau_cli.recipes.bench import summarize, targets

    def run(label: str, method: str, seed: int, mia_gap: float, test_gap: float) -> dict:
        return {
            "workload": "w", "ratio": 0.05, "label": label, "method": method, "seed": seed, "status": "ok",
            "forget_rows": 100, "reference_forget_accuracy": 0.75, "forget_gap": 0.01, "tow": 0.97, "rte": 50.0,
            "seconds": 0.1, "mia_gap": mia_gap, "test_gap": test_gap,
        }  # fmt: skip

    runs = [run("original (no unlearning)", "original", s, 0.2, 0.0) for s in (0, 1)]
    runs += [run("iau", "iau", 0, 0.15, 0.03), run("iau", "iau", 1, -0.15, -0.03)]
    found = {t["target"]: t for t in targets(summarize(runs))}
    assert not found["|AUC − retrained's| ≤ 0.03"]["met"]  # each seed is 0.15 off
    assert not found["test acc within 1 pt"]["met"]  # each seed is 3 points off


def test_a_changed_workload_trains_a_new_original_instead_of_reusing_the_cached_one(tmp_path: Path) -> None:
    config = tiny_bench(tmp_path)
    out = tmp_path / "out"
    methods = ["--methods", "original"]
    assert run_cli("bench", config, "--out", out, *methods, "-q").exit_code == 0
    write_yaml(tmp_path / "run.yaml", digits_config(epochs=3, gr_alpha=0.005))  # the recipe changed
    result = run_cli("bench", config, "--out", out, *methods, "--json", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] == 0  # the cell is new too
    originals = sorted(p.name for p in (out / "tiny" / "seed-0").glob("original-gr-*.safetensors"))
    assert len(originals) == 2


def test_bench_outputs_spare_the_workloads_files_and_its_own_folder(tmp_path: Path) -> None:
    config = tiny_bench(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "runs.jsonl").write_text("")
    before = {p: p.read_bytes() for p in (config, tmp_path / "run.yaml", out / "runs.jsonl")}
    for flag, target, fragment in (
        ("--markdown", tmp_path / "run.yaml", "workload tiny's config"),
        ("--json", out / "runs.jsonl", "bench folder"),
        ("--report", config, "the config"),
    ):
        assert_bad_input(run_cli("bench", config, "--out", out, flag, target, "-q"), fragment)
    assert all(p.read_bytes() == content for p, content in before.items())
    assert_bad_input(run_cli("bench", config, "--out", tmp_path / "run.yaml", "-q"), "--out is a file")
    (out / "runs.jsonl").write_text("not json\n")
    assert_bad_input(run_cli("bench", config, "--out", out, "-q"), "line 1 is not a bench run")


def test_the_readme_bench_config_is_one_the_bench_accepts(tmp_path: Path) -> None:
    from iau_cli.recipes.bench.spec import load_bench_config

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme[readme.index("A bench config (every key optional") :]
    block = block[block.index("```yaml") + len("```yaml") : block.index("```", block.index("```yaml") + 3)]
    (tmp_path / "bench.yaml").write_text(block)
    config, _ = load_bench_config(tmp_path / "bench.yaml")
    assert [w.name for w in config.workloads] == ["purchase-mlp", "noisy-mlp"] and config.sizes == [5, 30]
