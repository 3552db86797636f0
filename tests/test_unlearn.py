import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from iau_cli.core.gradients import loss_grad_sum, trainable
from iau_cli.io.checkpoint import load_checkpoint
from iau_cli.io.ids import parse_forget_ids
from iau_cli.recipes.train import restore
from iau_cli.recipes.unlearn import UnlearnRequest, unlearn

from .conftest import digits_config, write_yaml
from .helpers import assert_bad_input, run_cli


def forget_file(tmp_path: Path, ids: list[str], name: str = "ids.txt") -> Path:
    path = tmp_path / name
    path.write_text("# request\n" + "\n".join(ids) + "\n")
    return path


def sample_ids(ids: list[str], n: int, seed: int = 0) -> list[str]:
    return random.Random(seed).sample(ids, n)


def request(checkpoint: Path, ids: list[str], out: Path, **kwargs: object) -> UnlearnRequest:
    return UnlearnRequest(
        checkpoint=str(checkpoint),
        forget=parse_forget_ids("\n".join(ids).encode(), "ids"),
        out=str(out),
        device="cpu",
        **kwargs,
    )


def test_streamed_gradient_sum_equals_full_batch(small_checkpoint: Path) -> None:
    restored = restore(small_checkpoint)
    rows = np.arange(0, 300, 3)
    streamed, count = loss_grad_sum(restored.model, restored.data.train, rows, torch.device("cpu"), batch_size=7)
    x, y = restored.data.train.fetch(rows)
    params = trainable(restored.model)
    full = torch.autograd.grad(F.cross_entropy(restored.model(x), y, reduction="sum"), list(params.values()))
    assert count == len(rows)
    for (name, s), f in zip(streamed.items(), full):
        torch.testing.assert_close(s, f, rtol=1e-5, atol=1e-6, msg=name)


def test_adam_sign_matches_a_hand_computed_sign_step(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    forget = sample_ids(train_ids, 20)
    restored = restore(small_checkpoint)
    forget_rows = np.array(sorted(restored.data.train.ids.index(i) for i in forget))
    retain_rows = np.setdiff1d(np.arange(len(train_ids)), forget_rows)
    params = trainable(restored.model)

    def mean_grad(rows: np.ndarray) -> list[torch.Tensor]:
        x, y = restored.data.train.fetch(rows)
        return list(torch.autograd.grad(F.cross_entropy(restored.model(x), y), list(params.values())))

    g = [r - f for r, f in zip(mean_grad(retain_rows), mean_grad(forget_rows))]
    expected_by_hand = [p.detach() - 1e-3 * gi / (gi.abs() + 1e-8) for p, gi in zip(params.values(), g)]
    # ... which is what one step of a fresh torch Adam does, as in the authors' code.
    optimizer = torch.optim.Adam(list(params.values()), lr=1e-3)
    for p, gi in zip(params.values(), g):
        p.grad = gi
    optimizer.step()
    for p, hand in zip(params.values(), expected_by_hand):
        torch.testing.assert_close(p.detach(), hand, rtol=0, atol=1e-7)

    result = unlearn(request(small_checkpoint, forget, tmp_path / "u.safetensors", options={"rule": "adam-sign"}))
    assert result.changed and result.details["rule"] == "adam-sign"
    after = load_checkpoint(tmp_path / "u.safetensors").state_dict
    for name, hand in zip(params, expected_by_hand):
        torch.testing.assert_close(after[name], hand, rtol=0, atol=2e-7)


def test_replaying_a_request_changes_nothing(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    ids = sample_ids(train_ids, 15)
    first = unlearn(request(small_checkpoint, ids, tmp_path / "a.safetensors"))
    assert first.ids.forgotten_now == 15
    second = unlearn(request(tmp_path / "a.safetensors", ids, tmp_path / "b.safetensors"))
    assert not second.changed
    assert second.ids.already_forgotten == 15 and second.ids.forgotten_now == 0
    assert "nothing to forget" in second.message
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_sequential_requests_never_relearn_earlier_ids(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    first_ids = sample_ids(train_ids, 10, seed=1)
    second_ids = sample_ids([i for i in train_ids if i not in first_ids], 10, seed=2)
    unlearn(request(small_checkpoint, first_ids, tmp_path / "1.safetensors"))
    result = unlearn(request(tmp_path / "1.safetensors", second_ids + first_ids[:3], tmp_path / "2.safetensors"))
    assert result.ids.forgotten_now == 10 and result.ids.already_forgotten == 3
    assert result.retain_rows == len(train_ids) - 20
    restored = restore(tmp_path / "2.safetensors")
    learned = {restored.data.train.ids[r] for r in restored.partition().learn}
    assert not learned & set(first_ids + second_ids)
    lineage = restored.meta.lineage
    assert [e["event"] for e in lineage] == ["train", "unlearn", "unlearn"]
    assert lineage[2]["parent_sha256"] == load_checkpoint(tmp_path / "1.safetensors").sha256
    assert lineage[2]["parent_params_sha256"] == lineage[1]["params_sha256"]
    # Retraining from the second checkpoint leaves out the first request's rows too.
    retrained = unlearn(request(tmp_path / "1.safetensors", second_ids, tmp_path / "r.safetensors", method="retrain"))
    assert retrained.retain_rows == len(train_ids) - 20


def test_forgotten_ids_never_appear_in_clear(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    ids = sample_ids(train_ids, 5)
    unlearn(request(small_checkpoint, ids, tmp_path / "u.safetensors"))
    raw = (tmp_path / "u.safetensors").read_bytes()
    for sample_id in ids:
        assert sample_id.encode() not in raw


def heldout_figures(path: Path, ids: list[str]) -> tuple[float, float]:
    """(loss-attack AUC of the forget rows against the evaluation half of the test split, that
    half's accuracy) for the model in ``path``."""
    from iau_cli.core.metrics import auc, predict

    restored = restore(path)
    rows = np.array([restored.data.train.row_index()[i] for i in ids])
    forget = predict(restored.model, restored.data.train, rows, restored.device)
    heldout = predict(restored.model, restored.data.test, restored.data.test.halves()[1], restored.device)
    return auc(-forget.losses, -heldout.losses), heldout.accuracy


def test_default_unlearn_moves_memorized_rows_to_where_retraining_puts_them(
    prototype_models: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    """Tolerances: attack AUC within 0.1 of the retrained model's (its standard error with 60 rows
    against 400 is about 0.04); held-out accuracy within 5 points (400 rows: SE about 2.4 points)."""
    paths = prototype_models["memorizing"]
    ids = paths["ids"].read_text().split()
    original_auc, original_accuracy = heldout_figures(paths["original"], ids)
    retrained_auc, retrained_accuracy = heldout_figures(paths["retrained"], ids)
    assert original_auc > retrained_auc + 0.25  # the workload shows membership: a no-op fails below
    result = unlearn(request(paths["original"], ids, tmp_path / "u.safetensors"))
    assert result.weights_moved and result.details["rule"] == "targeted" and result.check == "ok"
    unlearned_auc, unlearned_accuracy = heldout_figures(tmp_path / "u.safetensors", ids)
    assert abs(unlearned_auc - retrained_auc) <= 0.1, (original_auc, unlearned_auc, retrained_auc)
    assert abs(unlearned_accuracy - retrained_accuracy) <= 0.05, (unlearned_accuracy, retrained_accuracy)
    assert not abs(original_auc - retrained_auc) <= 0.1  # doing nothing would not pass


def test_cleanup_recovers_most_of_what_retraining_gains(
    prototype_models: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    paths = prototype_models["noisy"]
    ids = [i for i in paths["ids"].read_text().split()]
    _, original_accuracy = heldout_figures(paths["original"], ids)
    _, retrained_accuracy = heldout_figures(paths["retrained"], ids)
    gain = retrained_accuracy - original_accuracy
    assert gain >= 0.05  # the workload shows the damage the wrong labels did
    result = unlearn(request(paths["original"], ids, tmp_path / "u.safetensors", options={"purpose": "cleanup"}))
    assert result.before.test_accuracy == pytest.approx(original_accuracy)
    recovered = (result.after.test_accuracy - original_accuracy) / gain
    assert recovered >= 0.5, (original_accuracy, result.after.test_accuracy, retrained_accuracy)
    # The erase purpose aims at held-out losses, which is wrong for rows whose labels are wrong.
    erased = unlearn(request(paths["original"], ids, tmp_path / "e.safetensors"))
    assert (erased.after.test_accuracy - original_accuracy) / gain < recovered


def test_ledger_path_equals_full_recompute(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from iau_cli.io.checkpoint import read_metadata

    ids = sample_ids(train_ids, 30)
    options = {"rule": "adam-sign"}
    via_ledger = unlearn(request(small_checkpoint, ids, tmp_path / "l.safetensors", options=options))
    assert via_ledger.ledger["path"] == "ledger"
    # The same checkpoint without its ledger: the retain gradient is recomputed over every row.
    loaded = load_checkpoint(small_checkpoint)
    assert loaded.ledger_tensors
    metadata = read_metadata(small_checkpoint)
    del metadata["iau.ledger"]
    stripped = tmp_path / "noledger.safetensors"
    save_file(loaded.state_dict, str(stripped), metadata=metadata)
    recomputed = unlearn(request(stripped, ids, tmp_path / "r.safetensors", options=options))
    assert recomputed.ledger["path"] == "recompute"
    a = load_checkpoint(tmp_path / "l.safetensors").state_dict
    b = load_checkpoint(tmp_path / "r.safetensors").state_dict
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)


def test_cli_unlearn_report_json_and_stdin(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    ids = sample_ids(train_ids, 8)
    out = tmp_path / "u.safetensors"
    report = tmp_path / "record.md"
    result = run_cli(
        "unlearn",
        small_checkpoint,
        "--forget",
        "-",
        "--out",
        out,
        "--json",
        "-",
        "--report",
        report,
        input="\n".join(ids + ids[:2]),
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["ids"]["requested"] == 8 and payload["ids"]["duplicates"] == 2
    assert set(payload["seconds"]) >= {"load", "gradients", "update", "write", "total"}
    # Each step's time counted once: no part negative, and the parts add up to at most the total.
    parts = {k: v for k, v in payload["seconds"].items() if k != "total"}
    assert all(v >= 0 for v in parts.values()), parts
    assert sum(parts.values()) <= payload["seconds"]["total"] + 1e-3, payload["seconds"]
    assert payload["before"]["forget_accuracy"] is not None
    assert "forget accuracy" in report.read_text()
    # What the method resolved an unset option to is in the report, not hidden behind the option's name.
    resolved = [k for k in payload["details"] if payload["options"].get(k, 0) is None]
    assert resolved and all(f"{k} (ran)" in report.read_text() for k in resolved), resolved
    # nested details (the self-check, each run of the rule) read as key-value pairs, not a Python repr
    assert any(isinstance(v, dict) for v in payload["details"].values())
    assert "{'" not in report.read_text() and f"code {payload['details']['check']['code']}" in report.read_text()
    html = tmp_path / "record.html"
    assert (
        run_cli(
            "unlearn",
            small_checkpoint,
            "-f",
            forget_file(tmp_path, ids),
            "-o",
            tmp_path / "v.safetensors",
            "--report",
            html,
            "-q",
        ).exit_code
        == 0
    )
    assert html.read_text().lstrip().startswith("<!DOCTYPE html>")


def test_cli_unknown_ids_exit_2_unless_allowed(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    ids = train_ids[:3] + [f"ghost-{i}" for i in range(7)]
    path = forget_file(tmp_path, ids)
    out = tmp_path / "u.safetensors"
    result = run_cli("unlearn", small_checkpoint, "--forget", path, "--out", out)
    assert_bad_input(result, "7 of 10 id(s)", "'ghost-0'", "and 2 more", "--allow-missing")
    assert not out.exists()
    allowed = run_cli(
        "unlearn", small_checkpoint, "--forget", path, "--out", out, "--allow-missing", "--json", "-", "-q"
    )
    assert allowed.exit_code == 0, allowed.stderr
    assert json.loads(allowed.stdout)["ids"]["unknown"] == 7


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["-O", "rule=adam-sign", "-O", "step_size=1e39"], "NaN or infinite"),
        (["-O", "rule=sideways"], "rule: 'sideways' is not one of"),
        (["-O", "stepz=3"], "stepz: unknown key"),
        (["--method", "retrain", "-O", "seed=x"], "seed: expected"),
    ],
)
def test_cli_bad_options_and_divergence_write_nothing(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, extra: list[str], fragment: str
) -> None:
    out = tmp_path / "u.safetensors"
    result = run_cli(
        "unlearn", small_checkpoint, "--forget", forget_file(tmp_path, train_ids[:5]), "--out", out, *extra
    )
    assert_bad_input(result, fragment)
    assert not out.exists()


def test_cli_forgetting_everything_is_refused(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    result = run_cli(
        "unlearn", small_checkpoint, "--forget", forget_file(tmp_path, train_ids), "--out", tmp_path / "u.safetensors"
    )
    assert_bad_input(result, "every training row")


def test_cli_plain_state_dict_needs_a_config(tmp_path: Path, train_ids: list[str]) -> None:
    from safetensors.torch import save_file

    from iau_cli.core.training import partition_rows, train_model
    from iau_cli.io.data import load_data

    config = digits_config(epochs=1)
    data = load_data(config.data)
    model, _ = train_model(config, data, partition_rows(data, config.train), torch.device("cpu"))
    plain = tmp_path / "elsewhere.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(plain))
    ids = forget_file(tmp_path, train_ids[:5])
    assert_bad_input(run_cli("unlearn", plain, "--forget", ids, "--out", tmp_path / "u.safetensors"), "--config")
    yaml_path = write_yaml(tmp_path / "cfg.yaml", config)
    result = run_cli(
        "unlearn", plain, "--forget", ids, "--config", yaml_path, "--out", tmp_path / "u.safetensors", "-q"
    )
    assert result.exit_code == 0, result.stderr
    restored = restore(tmp_path / "u.safetensors")
    assert [e["event"] for e in restored.meta.lineage] == ["import", "unlearn"]
    assert restored.meta.forgotten.contains(train_ids[0])


def test_cli_output_may_not_replace_input(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    import os

    ids = forget_file(tmp_path, train_ids[:2])
    link = tmp_path / "link.safetensors"
    link.symlink_to(small_checkpoint)
    hard = tmp_path / "hard.txt"
    os.link(ids, hard)
    before = {p: p.read_bytes() for p in (small_checkpoint, ids)}
    out = ["--out", tmp_path / "u.safetensors"]
    cases = [
        (["--out", small_checkpoint, "--overwrite"], "--out would overwrite the checkpoint"),
        ([*out, "--json", small_checkpoint], "--json would overwrite the checkpoint"),
        ([*out, "--json", link], "--json would overwrite the checkpoint"),  # through a symlink
        ([*out, "--report", hard], "--report would overwrite the ids file"),  # a hard link, by inode
        ([*out, "--json", tmp_path / "u.safetensors"], "name the same file"),
        ([*out, "--json", tmp_path], "names a folder"),
    ]
    for extra, fragment in cases:
        assert_bad_input(run_cli("unlearn", small_checkpoint, "--forget", ids, *extra), fragment)
        assert not (tmp_path / "u.safetensors").exists()
    assert all(p.read_bytes() == content for p, content in before.items())


def test_cli_train_json_may_not_replace_its_data(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c", "d"], "label": [0, 1, 0, 1], "x": [0.0, 1.0, 2.0, 3.0]}), data)
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  train: {data}\n  test_fraction: 0.5\nmodel:\n  name: logreg\n")
    content = data.read_bytes()
    result = run_cli("train", config, "--out", tmp_path / "m.safetensors", "--json", data)
    assert_bad_input(result, "--json already exists; pass --overwrite")  # any existing file needs --overwrite
    result = run_cli("train", config, "--out", tmp_path / "m.safetensors", "--json", data, "--overwrite")
    assert_bad_input(result, "--json would overwrite the train data")  # and an input is never one to replace
    assert data.read_bytes() == content and not (tmp_path / "m.safetensors").exists()


def test_rows_that_already_look_held_out_are_recorded_and_the_report_says_the_weights_did_not_move(
    memorized: Path, train_ids: list[str], tmp_path: Path
) -> None:
    """On the easy digits the model's training rows score like held-out rows: the matched rule
    (a population stop) has nothing to push."""
    ids = sample_ids(train_ids, 20, seed=5)
    result = unlearn(request(memorized, ids, tmp_path / "u.safetensors", options={"rule": "matched"}))
    assert result.details["steps"] == 0 and result.details["stopped"] == "the forget rows look held-out"
    assert not result.weights_moved
    assert "the weights did not move" in result.message and not result.message.startswith("forgot")
    before, after = load_checkpoint(memorized), load_checkpoint(tmp_path / "u.safetensors")
    assert all(torch.equal(before.state_dict[k], after.state_dict[k]) for k in before.state_dict)
    restored = restore(tmp_path / "u.safetensors")
    assert all(restored.meta.forgotten.contains(i) for i in ids)  # recorded all the same


def test_the_ledger_path_is_timed_once(small_checkpoint: Path, train_ids: list[str], monkeypatch) -> None:
    """retain = ledger − forget: the forget pass runs inside the retain-gradient step and must not
    be counted twice (it made the reported update time negative)."""
    import time

    from iau_cli.core.methods import base
    from iau_cli.recipes.unlearn import build_context, plan_rows

    def slow_sum(*args: object, **kwargs: object) -> tuple[dict, int]:
        time.sleep(0.2)
        return {name: torch.zeros_like(p) for name, p in trainable(restored.model).items()}, 1

    restored = restore(small_checkpoint)
    rows = plan_rows(restored, list(range(10)))
    context = build_context(restored, rows)
    monkeypatch.setattr(base, "loss_grad_sum", slow_sum)
    started = time.perf_counter()
    context.retain_grad_sum()
    elapsed = time.perf_counter() - started
    assert context.retain_path.startswith("ledger")
    assert context.seconds_gradients <= elapsed + 1e-6


def test_the_carried_ledger_is_the_retain_sum_at_the_parents_weights_whatever_the_method(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    """Finetuning moves the weights; the child's ledger must still be the retain sum at θ*."""
    ids = sample_ids(train_ids, 25, seed=7)
    result = unlearn(request(small_checkpoint, ids, tmp_path / "f.safetensors", method="finetune"))
    assert result.weights_moved and result.ledger["next"].startswith("stale")
    parent = restore(small_checkpoint)
    child = load_checkpoint(tmp_path / "f.safetensors")
    retain = restore(tmp_path / "f.safetensors").partition().learn
    expected, _ = loss_grad_sum(parent.model, parent.data.train, retain, torch.device("cpu"))
    for name, value in expected.items():
        torch.testing.assert_close(child.ledger_tensors[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_a_stale_ledger_is_never_used_and_the_next_carried_sum_is_exact(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    """Relative parameter drift bounds nothing (a drift of 1e-2 left the sum 95% off, measured), so a
    stale ledger is not used: the next request recomputes the retain gradient, and what it carries
    to its child is the exact retain sum at its own θ*."""
    from iau_cli.recipes.ledger import show_ledger

    first, second = sample_ids(train_ids, 20, seed=8), sample_ids(train_ids, 20, seed=9)
    second = [i for i in second if i not in first]
    unlearn(request(small_checkpoint, first, tmp_path / "1.safetensors", options={"rule": "adam-sign"}))
    assert show_ledger(str(tmp_path / "1.safetensors")).status == "stale"
    result = unlearn(
        request(tmp_path / "1.safetensors", second, tmp_path / "2.safetensors", options={"rule": "adam-sign"})
    )
    assert result.ledger["path"] == "recompute" and "not used" in result.ledger["detail"]
    parent = restore(tmp_path / "1.safetensors")
    retain = restore(tmp_path / "2.safetensors").partition().learn
    expected, _ = loss_grad_sum(parent.model, parent.data.train, retain, torch.device("cpu"))
    carried = load_checkpoint(tmp_path / "2.safetensors").ledger_tensors
    for name, value in expected.items():
        torch.testing.assert_close(carried[name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert "--max-ledger-drift" not in run_cli("unlearn", "--help").stdout


def test_the_lineage_records_what_ran(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    """Defaults left unset (None) in the options are recorded as the values that ran."""
    unlearn(request(small_checkpoint, sample_ids(train_ids, 10), tmp_path / "u.safetensors", options={"steps": 7}))
    event = restore(tmp_path / "u.safetensors").meta.lineage[-1]
    assert event["options"]["step_size"] is None and event["options"]["steps"] == 7
    assert event["options"]["rule"] == "auto" and event["ran"]["rule"] == "targeted"
    assert event["ran"]["lr"] == 2e-3 and event["ran"]["steps"] == 7
    # every run is recorded (weight 1.0, multiplier rounds while the rows lag), and the one kept
    tried = event["ran"]["ladder"]
    assert [(t["correction"], t["round"]) for t in tried] == [(1.0, n) for n in range(len(tried))]
    assert 1 <= len(tried) <= 4 and event["options"]["rounds"] == 3 and event["options"]["accept_rms"] is None
    assert all(t["target_rms_after"] > 0.25 for t in tried[:-1])  # another round only when refused
    assert event["ran"]["correction"] == 1.0 and event["options"]["ladder"] is None
    assert event["ran"]["check"]["code"] in ("ok", "targets_not_reached", "heldout_accuracy_drop")


def test_calibration_rows_are_a_sample_not_the_head_of_a_sorted_file(small_checkpoint: Path) -> None:
    from iau_cli.recipes.unlearn import build_context, plan_rows

    restored = restore(small_checkpoint)
    context = build_context(restored, plan_rows(restored, [0]))
    split, rows = context.calibration_rows(limit=60)
    assert len(rows) == 60 and set(rows) <= set(split.halves()[0])
    labels = split.labels[rows]
    # The digits test file is sorted by id, not by label; a head cut would still be a poor sample of a
    # label-sorted file: the sample spans the half rather than its first rows.
    assert rows.max() > np.sort(split.halves()[0])[60] and len(set(labels.tolist())) >= 8


def test_the_default_out_is_guarded_like_any_other(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    import shutil

    model = tmp_path / "m.safetensors"
    shutil.copy(small_checkpoint, model)
    default = tmp_path / "m.unlearned.safetensors"
    default.write_text("\n".join(train_ids[:3]) + "\n")  # an ids file that happens to have the default name
    assert_bad_input(run_cli("unlearn", model, "-f", default, "--overwrite", "-q"), "would overwrite the ids file")
    default.unlink()
    ids = forget_file(tmp_path, train_ids[:3])
    assert_bad_input(run_cli("unlearn", model, "-f", ids, "--report", default, "-q"), "name the same file")
    assert not default.exists()


def test_gradient_time_is_counted_once(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gradient passes are timed apart from the update and subtracted from it once: with slow
    gradient sums (the reference's sign step takes two at θ*) the update's own time stays >= 0."""
    import time

    from iau_cli.core.methods import base

    def slow_sum(*args: object, **kwargs: object) -> tuple[dict, int]:
        time.sleep(0.3)
        return loss_grad_sum(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(base, "loss_grad_sum", slow_sum)
    forget = parse_forget_ids("\n".join(train_ids[:10]).encode(), "ids")
    request = UnlearnRequest(str(small_checkpoint), forget, str(tmp_path / "u.safetensors"), device="cpu")
    request.options = {"rule": "adam-sign"}
    request.ledger_refresh = "later"
    seconds = unlearn(request).seconds
    assert seconds["gradients"] >= 0.3, seconds  # at least the forget pass (the retain sum may be the ledger's)
    assert seconds["update"] >= 0, seconds
    parts = sum(v for k, v in seconds.items() if k != "total")
    assert parts <= seconds["total"] + 1e-3, seconds


def test_the_library_refuses_its_input_as_output_and_an_existing_output_before_any_work(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """unlearn() and train() are the library's output owners: their one guard runs before the work."""
    from iau_cli.errors import IauError
    from iau_cli.recipes import train as train_module
    from iau_cli.recipes import unlearn as unlearn_module

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started before the output was refused")

    monkeypatch.setattr(unlearn_module, "make_unlearned", never)
    monkeypatch.setattr(train_module, "make_trained", never)
    forget = parse_forget_ids("\n".join(train_ids[:3]).encode(), "ids")
    same = UnlearnRequest(str(small_checkpoint), forget, str(small_checkpoint), device="cpu", overwrite=True)
    with pytest.raises(IauError, match="would replace the input"):
        unlearn_module.unlearn(same)
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"someone's file")
    with pytest.raises(IauError, match="exists"):
        unlearn_module.unlearn(UnlearnRequest(str(small_checkpoint), forget, str(taken), device="cpu"))
    with pytest.raises(IauError, match="exists"):
        train_module.train(digits_config(epochs=1), taken)
    assert taken.read_bytes() == b"someone's file"
