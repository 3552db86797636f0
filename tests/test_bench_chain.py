"""Bench cells where unlearning failures show: chains of requests, each from the previous output and
judged against a model retrained without all of them, and request sizes in rows."""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from iau_cli.config import to_dict
from iau_cli.recipes.bench import BenchConfig, MethodEntry, Workload, run_bench, validate_shape
from iau_cli.recipes.bench.spec import RequestSize
from iau_cli.recipes.bench.store import cell_key

from .conftest import digits_config, write_yaml
from .helpers import assert_bad_input, run_cli

METHODS = [
    MethodEntry("original", "original"),
    MethodEntry("retrain", "retrain"),
    MethodEntry("retrain (another seed)", "retrain", {"seed": 1000}),
    MethodEntry("finetune", "finetune"),
]


def tiny(tmp_path: Path, **changes: object) -> BenchConfig:
    write_yaml(tmp_path / "run.yaml", digits_config(epochs=2, gr_alpha=0.005))
    settings: dict = {"methods": METHODS, "ratios": [0.05], "seeds": 1, **changes}
    return BenchConfig(workloads=[Workload("tiny", str(tmp_path / "run.yaml"))], **settings)


def by_label(runs: list[dict], **cell: object) -> dict[str, dict]:
    return {r["label"]: r for r in runs if all(r.get(k) == v for k, v in cell.items())}


def test_the_requests_of_a_chain_are_disjoint_and_the_first_is_the_one_request_cells(tmp_path: Path) -> None:
    from iau_cli.progress import no_progress
    from iau_cli.recipes.bench.cells import SeedGrid

    config = tiny(tmp_path)
    grid = SeedGrid(config.workloads[0], digits_config(epochs=2), 0, tmp_path / "models", "cpu", no_progress, tmp_path)
    restored = grid.original("gr")
    learned = len(restored.partition().learn)
    for size, count in ((RequestSize(ratio=0.05), round(0.05 * learned)), (RequestSize(rows=2), 2)):
        requests = grid.requests(restored, size, chain=4)
        assert [len(r) for r in requests] == [count] * 4
        assert len(set().union(*map(set, requests))) == 4 * count  # disjoint
        assert requests[0] == grid.requests(restored, size, chain=1)[0]
    assert grid.requests(restored, RequestSize(rows=5), 1) != grid.requests(restored, RequestSize(rows=2), 1)


def test_a_chain_reports_each_step_and_judges_the_final_model_against_retraining_without_all(tmp_path: Path) -> None:
    out = tmp_path / "out"
    chained = run_bench(tiny(tmp_path, chain=3, sizes=[2]), out, device="cpu")
    assert validate_shape(chained.to_dict()) == []
    runs = by_label(chained.runs, ratio=0.05)
    assert {r["status"] for r in runs.values()} == {"ok"}
    request = runs["finetune"]["request_rows"]
    assert request == round(0.05 * 1438) and all(r["forget_rows"] == 3 * request for r in runs.values())
    finetune, original, retrain = runs["finetune"], runs["original"], runs["retrain"]
    steps = finetune["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3] and all(s["rows"] == request for s in steps)
    # The final figures are the last step's model on every request's rows.
    assert finetune["forget_accuracy"] == pytest.approx(steps[-1]["forgotten_accuracy"])
    assert finetune["test_accuracy"] == pytest.approx(steps[-1]["test_accuracy"])
    assert steps[0]["test_drop"] == pytest.approx(original["test_accuracy"] - steps[0]["test_accuracy"])
    assert finetune["max_step_test_drop"] == max(s["test_drop"] for s in steps)
    assert finetune["seconds"] == pytest.approx(sum(s["seconds"] for s in steps))
    assert finetune["rte"] == pytest.approx(3 * finetune["retrain_seconds"] / finetune["seconds"])
    # Retrain rows retrain once without all the requests and are charged for one retrain per request.
    assert "steps" not in retrain and retrain["seconds"] == pytest.approx(3 * retrain["retrain_seconds"])
    assert [s["test_drop"] for s in original["steps"]] == [0.0, 0.0, 0.0]
    sized = by_label(chained.runs, size=2)
    assert sized["finetune"]["ratio"] is None and sized["finetune"]["request_rows"] == 2
    assert all(r["forget_rows"] == 6 for r in sized.values())

    again = run_bench(tiny(tmp_path, chain=3, sizes=[2]), out, device="cpu")
    assert again.skipped == 8 and [r["key"] for r in again.runs] == [r["key"] for r in chained.runs]

    single = run_bench(tiny(tmp_path), out, device="cpu")
    assert single.skipped == 0 and len(list((out / "tiny" / "seed-0").glob("original-*"))) == 1  # original reused
    one = by_label(single.runs)
    assert "step_details" not in one["finetune"] and len(one["finetune"]["steps"]) == 1
    assert one["original"]["forget_rows"] == request
    # Against the model retrained without all three requests, doing nothing scores otherwise.
    assert (one["original"]["tow"], one["original"]["reference_forget_accuracy"]) != (
        original["tow"],
        original["reference_forget_accuracy"],
    )
    summary = {(s["chain"], s["label"]): s for s in chained.summary + single.summary if s["ratio"] == 0.05}
    assert len(summary[(3, "finetune")]["steps"]) == 3 and summary[(3, "finetune")]["max_step_test_drop"]


def test_each_request_starts_from_the_previous_output_and_retains_only_rows_never_requested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors.torch import load_file

    from iau_cli.core.methods import descent
    from iau_cli.core.methods.base import MethodOutput

    seen: list[dict] = []

    def recording(ctx, options):  # a method that says what it was given and moves every weight by 1
        name, parameter = next(iter(ctx.model.named_parameters()))
        seen.append(
            {
                "name": name,
                "weights": float(parameter.detach().sum()),
                "forget": set(ctx.forget_rows.tolist()),
                "retain": set(ctx.retain_rows.tolist()),
                "ledger": ctx.retain_source is not None,
                "chain": list(ctx.chain),
            }
        )
        with torch.no_grad():
            parameter.add_(1.0)
        return MethodOutput(ctx.model, {"call": len(seen)})

    monkeypatch.setattr(descent, "run_finetune", recording)  # the catalog's entry point, resolved per call
    methods = [METHODS[0], METHODS[1], MethodEntry("recorded", "finetune")]
    result = run_bench(tiny(tmp_path, methods=methods, chain=3), tmp_path / "out", device="cpu")
    (original_path,) = (tmp_path / "out" / "tiny" / "seed-0").glob("original-gr-*")
    tensor = load_file(original_path)[seen[0]["name"]]
    assert len(seen) == 3 and seen[0]["weights"] == pytest.approx(float(tensor.sum()), abs=1e-3)
    for step in (1, 2):  # from the previous step's output, not from the original again
        assert seen[step]["weights"] == pytest.approx(seen[step - 1]["weights"] + tensor.numel(), abs=1e-2)
    learned = seen[0]["retain"] | seen[0]["forget"]
    for step, call in enumerate(seen):
        so_far = set().union(*(c["forget"] for c in seen[: step + 1]))
        assert call["retain"] == learned - so_far
    assert [c["ledger"] for c in seen] == [True, False, False]  # the ledger is the original's sum only
    # each request sees the ones before it as its chain, as a retention job's request reads its lineage
    assert [c["chain"] for c in seen] == [[], [{"call": 1}], [{"call": 1}, {"call": 2}]]
    recorded = by_label(result.runs)["recorded"]
    assert recorded["step_details"] == [{"call": 1}, {"call": 2}, {"call": 3}]
    assert recorded["details"] == {"call": 3}
    assert by_label(result.runs)["original"]["steps"][0]["test_drop"] == 0.0  # the original was not moved


def test_a_one_request_ratio_cell_keeps_the_key_it_had_before_chains_and_sizes(tmp_path: Path) -> None:
    config = digits_config(epochs=2)
    entry = METHODS[3]
    before = to_dict(config)
    del before["model"]["path"]  # the config as it was before model.path existed
    legacy = json.dumps(["tiny", before, dataclasses.asdict(entry), 0.05, 0], sort_keys=True)  # the old key
    assert (
        cell_key("tiny", config, entry, RequestSize(ratio=0.05), 0) == hashlib.sha256(legacy.encode()).hexdigest()[:20]
    )
    keys = {
        cell_key("tiny", config, entry, RequestSize(ratio=0.05), 0, chain=3),
        cell_key("tiny", config, entry, RequestSize(rows=2), 0),
        cell_key("tiny", config, entry, RequestSize(rows=2), 0, chain=3),
    }
    assert len(keys) == 3 and cell_key("tiny", config, entry, RequestSize(ratio=0.05), 0) not in keys


def test_a_method_whose_behaviour_changed_gets_new_cell_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalog revision re-keys the method's cells (an old results folder does not hand back runs
    of the old behaviour under the same label); other methods' cells and the originals keep theirs."""
    from iau_cli.core.methods import catalog

    config = digits_config(epochs=2)
    finetune, original = METHODS[3], METHODS[0]
    size = RequestSize(ratio=0.05)
    before = {e.label: cell_key("tiny", config, e, size, 0) for e in (finetune, original, METHODS[1])}
    revised = tuple(
        dataclasses.replace(spec, revision=spec.revision + 1) if spec.name == "finetune" else spec
        for spec in catalog.CATALOG
    )
    monkeypatch.setattr(catalog, "CATALOG", revised)
    after = {e.label: cell_key("tiny", config, e, size, 0) for e in (finetune, original, METHODS[1])}
    assert after["finetune"] != before["finetune"]
    assert after["original"] == before["original"] and after["retrain"] == before["retrain"]


def test_bench_cli_chain_and_sizes_render_each_request_and_the_row_counts(tmp_path: Path) -> None:
    write_yaml(tmp_path / "run.yaml", digits_config(epochs=2, gr_alpha=0.005))
    config = tmp_path / "bench.yaml"
    config.write_text(
        "workloads:\n  - {name: tiny, config: run.yaml}\n"
        "methods:\n  - {label: original, method: original}\n  - {label: retrain, method: retrain}\n"
        "ratios: [0.05]\nsizes: [3]\nseeds: 1\n"
    )
    markdown = tmp_path / "bench.md"
    result = run_cli(
        "bench", config, "--out", tmp_path / "out", "--chain", "2", "--sizes", "3", "--markdown", markdown, "-q"
    )
    assert result.exit_code == 0, result.stderr
    text = markdown.read_text()
    assert "tiny, forget 2 requests of 3 rows each, in sequence: mean" in text
    assert "tiny, forget 2 requests of 3 rows each, in sequence: after each request" in text
    assert "5%" not in text  # --sizes alone replaced the config's ratios and sizes
    assert "| max step drop |" in text and "| original | 1 | 3 |" in text
    plain = run_cli("bench", config, "--out", tmp_path / "out", "--markdown", tmp_path / "plain.md", "-q")
    assert plain.exit_code == 0, plain.stderr
    plain_text = (tmp_path / "plain.md").read_text()
    assert "tiny, forget 5% (72 rows): mean" in plain_text and "tiny, forget 3 rows: mean" in plain_text
    assert "after each request" not in plain_text and "max step drop" not in plain_text


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--sizes", "0"], "sizes: each must be at least 1 row"),
        (["--sizes", "1.5"], "--sizes '1.5': expected whole numbers"),
        (["--ratios", "0.4", "--chain", "3"], "ratio × chain < 1"),
        (["--sizes", "5000"], "need 5000 of the 1438 rows"),
    ],
)
def test_bench_refuses_request_sizes_it_cannot_draw(tmp_path: Path, flags: list[str], fragment: str) -> None:
    write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    config = tmp_path / "bench.yaml"
    config.write_text("workloads:\n  - {name: tiny, config: run.yaml}\nmethods:\n  - {label: o, method: original}\n")
    assert_bad_input(run_cli("bench", config, "--out", tmp_path / "out", *flags, "-q"), fragment)


def test_a_runs_file_written_before_chains_resumes_as_one_request_ratio_cells(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_bench(tiny(tmp_path, ratios=[0.05]), out, device="cpu")
    lines = (out / "runs.jsonl").read_text().splitlines()
    old = [{k: v for k, v in json.loads(line).items() if k not in ("size", "chain")} for line in lines]
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    again = run_bench(tiny(tmp_path, ratios=[0.05]), out, device="cpu")
    assert again.skipped == len(first.runs) and validate_shape(again.to_dict()) == []
    assert [s["chain"] for s in again.summary] == [1] * len(again.summary)
    assert np.isclose(again.runs[0]["tow"], first.runs[0]["tow"])
