"""Issue 14: the delete-rows workflow, records that stand alone, reports, private forgotten ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iau_cli.io.checkpoint import read_metadata

from .helpers import assert_bad_input, run_cli


def write_rows(path: Path, rows: int = 120, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = [f"r{i}" for i in range(rows)]
    lines = ["id,label,a,b,c"] + [
        f"{ids[i]},{i % 3},{rng.normal():.4f},{rng.normal():.4f},{rng.normal():.4f}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return ids


def delete_rows(path: Path, ids: set[str]) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0]] + [line for line in lines[1:] if line.split(",")[0] not in ids]) + "\n")


@pytest.fixture
def csv_model(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    data = tmp_path / "rows.csv"
    ids = write_rows(data)
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  train: rows.csv\n  test_fraction: 0.25\nmodel:\n  name: logreg\ntrain:\n  epochs: 3\n")
    model = tmp_path / "m0.safetensors"
    done = run_cli("train", config, "--out", model, "-q")
    assert done.exit_code == 0, done.stderr
    return model, data, ids


def forget(tmp_path: Path, model: Path, ids: list[str], out: str, *extra: object):
    path = tmp_path / f"{out}.ids"
    path.write_text("".join(f"{i}\n" for i in ids))
    return run_cli("unlearn", model, "-f", path, "-o", tmp_path / out, *extra)


def train_ids_of(model: Path) -> list[str]:
    from iau_cli.recipes.train import restore

    return list(restore(model).data.train.ids)


# ------------------------------------------------------------------------------ delete-rows workflow


def test_deleting_exactly_the_forgotten_rows_is_accepted_anything_else_refused(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    model, data, ids = csv_model
    learned = train_ids_of(model)
    first, second = learned[:4], learned[4:7]
    assert forget(tmp_path, model, first, "m1.safetensors", "-q").exit_code == 0
    original = data.read_text()

    delete_rows(data, set(first))  # the retention job deletes what was forgotten
    step = forget(tmp_path, tmp_path / "m1.safetensors", second, "m2.safetensors", "-q")
    assert step.exit_code == 0, step.stderr
    delete_rows(data, set(second))
    shown = run_cli("ledger", "show", tmp_path / "m2.safetensors", "-q")
    assert shown.exit_code == 0, shown.stderr  # every later command accepts the shrunk data

    # Any other change is refused: one more row gone, an edited value, an added row.
    for change in ("delete another", "edit", "add"):
        data.write_text(original)
        delete_rows(data, set(first) | set(second))
        lines = data.read_text().splitlines()
        if change == "delete another":
            lines.pop(5)
        elif change == "edit":
            lines[5] = lines[5].rsplit(",", 1)[0] + ",9.9999"
        else:
            lines.append("intruder,1,0.1,0.2,0.3")
        data.write_text("\n".join(lines) + "\n")
        refused = run_cli("ledger", "show", tmp_path / "m2.safetensors")
        assert_bad_input(
            refused, "training data changed", "not only by deleting the rows of the requests it has forgotten"
        )


def test_a_row_deleted_before_it_was_unlearned_is_named_with_the_fix(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    model, data, _ = csv_model
    victim = train_ids_of(model)[0]
    delete_rows(data, {victim})
    result = forget(tmp_path, model, [victim], "m1.safetensors", "--allow-missing")
    assert_bad_input(
        result, "deleted from the data before it was unlearned", "restore it, run iau unlearn", "Nightly retention job"
    )


def test_allow_data_change_records_the_data_as_it_is_now(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    model, data, _ = csv_model
    learned = train_ids_of(model)
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines + ["newcomer,2,0.5,0.5,0.5"]) + "\n")
    assert_bad_input(forget(tmp_path, model, learned[:2], "m1.safetensors"), "training data changed")
    allowed = forget(tmp_path, model, learned[:2], "m1.safetensors", "--allow-data-change", "-q")
    assert allowed.exit_code == 0, allowed.stderr
    # The child records the new data: the next request needs no flag (the old fingerprint is not carried).
    follow = forget(tmp_path, tmp_path / "m1.safetensors", learned[2:4], "m2.safetensors", "-q")
    assert follow.exit_code == 0, follow.stderr
    fingerprint = json.loads(read_metadata(tmp_path / "m1.safetensors")["iau.data"])["fingerprint"]
    parent = json.loads(read_metadata(model)["iau.data"])["fingerprint"]
    assert fingerprint["sha256"] != parent["sha256"] and fingerprint["since_event"] == 1


def test_test_split_ids_are_recorded_so_their_rows_may_be_deleted(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    from iau_cli.recipes.train import restore

    model, data, _ = csv_model
    test_id = restore(model).data.test.ids[0]
    result = forget(tmp_path, model, [test_id], "m1.safetensors", "--json", "-", "-q")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ids"]["test_rows"] == 1 and out["changed"] is True and out["weights_moved"] is False
    delete_rows(data, {test_id})
    assert run_cli("ledger", "show", tmp_path / "m1.safetensors", "-q").exit_code == 0
    replay = forget(tmp_path, tmp_path / "m1.safetensors", [test_id], "m2.safetensors", "--json", "-", "-q")
    assert json.loads(replay.stdout)["ids"]["already_forgotten"] == 1


# ------------------------------------------------------------------------------ records and reports


def test_records_carry_version_time_and_full_hashes_of_inputs_and_outputs(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    from iau_cli.io.files import file_sha256

    model, _, _ = csv_model
    learned = train_ids_of(model)
    result = forget(
        tmp_path, model, learned[:3], "m1.safetensors", "--json", tmp_path / "u.json", "--report", tmp_path / "u.md",
        "--forgotten-ids", tmp_path / "gone.txt", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads((tmp_path / "u.json").read_text())
    record = data["record"]
    assert record["iau_version"] and record["time"].endswith("+00:00")
    assert record["inputs"]["checkpoint"]["sha256"] == file_sha256(model)
    assert record["inputs"]["ids"]["sha256"] == file_sha256(tmp_path / "m1.safetensors.ids")
    for name in ("m1.safetensors", "u.md", "gone.txt"):
        assert record["outputs"][str(tmp_path / name)] == file_sha256(tmp_path / name)
    event = json.loads(read_metadata(tmp_path / "m1.safetensors")["iau.lineage"])[-1]
    assert data["ids_digest"] == event["ids_digest"] and len(data["ids_digest"]) == 64
    assert (tmp_path / "gone.txt").read_text().split() == sorted(learned[:3], key=learned.index)
    assert file_sha256(model) in (tmp_path / "u.md").read_text()  # full hashes in the report too


def test_report_format_overrides_the_extension_and_html_is_a_page(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    model, _, _ = csv_model
    learned = train_ids_of(model)
    out = tmp_path / "unlearn.md.tmp"
    result = forget(tmp_path, model, learned[:3], "m1.safetensors", "--report", out, "--report-format", "md", "-q")
    assert result.exit_code == 0, result.stderr
    assert out.read_text().startswith("# iau unlearn") and "┌" not in out.read_text()
    bad = forget(tmp_path, model, learned[:3], "m2.safetensors", "--report", tmp_path / "r", "--report-format", "pdf")
    assert_bad_input(bad, "--report-format 'pdf'", "md, html, txt")

    ids = tmp_path / "audit.ids"
    ids.write_text("\n".join(learned[:3]) + "\n")
    page = tmp_path / "audit.html"
    audited = run_cli("audit", tmp_path / "m1.safetensors", "-f", ids, "--original", model, "--report", page, "-q")
    assert audited.exit_code in (0, 1), audited.stderr
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and "<pre" not in html
    assert html.count("<svg") == 2  # forget vs held-out losses, before and after
    assert html.index('class="status') < html.index("<table>")  # the verdict on top


def test_audit_allow_missing_audits_the_rows_that_are_there(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    model, _, _ = csv_model
    learned = train_ids_of(model)
    assert forget(tmp_path, model, learned[:3], "m1.safetensors", "-q").exit_code == 0
    ids = tmp_path / "audit.ids"
    ids.write_text("\n".join([*learned[:3], "ghost"]) + "\n")
    refused = run_cli("audit", tmp_path / "m1.safetensors", "-f", ids)
    assert_bad_input(refused, "1 id(s) are not training rows", "--allow-missing")
    allowed = run_cli("audit", tmp_path / "m1.safetensors", "-f", ids, "--allow-missing", "--json", "-", "-q")
    assert allowed.exit_code in (0, 1), allowed.stderr
    expected = {"audited": 3, "duplicates": 0, "unknown_skipped": 1, "test_rows_recorded": 0}
    assert json.loads(allowed.stdout)["ids"] == expected


def test_lineage_prints_the_whole_history(csv_model: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    model, _, _ = csv_model
    learned = train_ids_of(model)
    assert forget(tmp_path, model, learned[:3], "m1.safetensors", "-q").exit_code == 0
    shown = run_cli("lineage", tmp_path / "m1.safetensors")
    assert shown.exit_code == 0, shown.stderr
    assert "train" in shown.stdout and "unlearn" in shown.stdout and "iau" in shown.stdout
    plain = tmp_path / "plain.safetensors"
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(plain))
    assert_bad_input(run_cli("lineage", plain), "has no lineage")


# ------------------------------------------------------------------------------ private forgotten ids


def test_keyed_ids_cannot_be_enumerated_and_rotation_keeps_old_ones_readable(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    model, data, _ = csv_model
    learned = train_ids_of(model)
    keys = tmp_path / "keys.txt"
    keys.write_text("first-secret-key-0123456789\n")
    monkeypatch.setenv("IAU_ID_KEY_FILE", str(keys))
    done = forget(tmp_path, model, learned[:3], "m1.safetensors", "--json", "-", "-q")
    assert done.exit_code == 0, done.stderr
    assert not any(w["code"] == "ids_enumerable" for w in json.loads(done.stdout)["warnings"])

    # The attack of finding 7: hash every id of the data with the stored salt. Nothing matches.
    forgotten = json.loads(read_metadata(tmp_path / "m1.safetensors")["iau.forgotten"])
    salt = bytes.fromhex(forgotten["salt"])
    import base64

    stored = base64.b64decode(forgotten["hashes"])
    assert stored == b"" and forgotten["keyed"]
    keyed = base64.b64decode(next(iter(forgotten["keyed"].values())))
    guesses = {hashlib.sha256(salt + i.encode()).digest()[:16] for i in learned}
    assert not {keyed[i : i + 16] for i in range(0, len(keyed), 16)} & guesses

    # Without the key, what matches ids is refused in one line; what touches no id needs no key:
    # the history, and the ledger's state (from the file alone, said so).
    monkeypatch.delenv("IAU_ID_KEY_FILE")
    assert_bad_input(
        run_cli(
            "unlearn",
            tmp_path / "m1.safetensors",
            "-f",
            tmp_path / "m1.safetensors.ids",
            "-o",
            tmp_path / "x.safetensors",
        ),
        "keyed with operator key",
        "IAU_ID_KEY_FILE",
    )
    assert run_cli("lineage", tmp_path / "m1.safetensors", "-q").exit_code == 0
    shown = run_cli("ledger", "show", tmp_path / "m1.safetensors", "--json", "-", "-q")
    assert shown.exit_code == 0, shown.stderr
    ledger = json.loads(shown.stdout)
    # A keyed deletion keeps no ledger: the sum over the rows left would name the forgotten ones.
    assert ledger["status"] == "absent" and "keyed deletion" in ledger["detail"] and ledger["rows"] is None
    keys.write_text("second-secret-key-9876543210\nfirst-secret-key-0123456789\n")
    monkeypatch.setenv("IAU_ID_KEY_FILE", str(keys))
    delete_rows(data, set(learned[:3]))  # masked row digests are unmasked with the old key
    replay = forget(tmp_path, tmp_path / "m1.safetensors", learned[:5], "m2.safetensors", "--json", "-", "-q")
    assert replay.exit_code == 0, replay.stderr
    assert json.loads(replay.stdout)["ids"]["already_forgotten"] == 3
    groups = json.loads(read_metadata(tmp_path / "m2.safetensors")["iau.forgotten"])["keyed"]
    assert len(groups) == 2  # the new ids went under the new key


def test_without_a_key_unlearn_warns_that_the_record_is_enumerable(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    model, _, _ = csv_model
    done = forget(tmp_path, model, train_ids_of(model)[:3], "m1.safetensors", "--json", "-", "-q")
    assert any(
        w["code"] == "ids_enumerable" and "without an operator key" in w["message"]
        for w in json.loads(done.stdout)["warnings"]
    )


# ------------------------------------------------------------------------------ the audit rule


def test_rows_the_original_already_got_wrong_are_not_called_over_forgotten() -> None:
    from iau_cli.recipes.audit import Thresholds, verdict_checks

    from .test_audit import _evidence, _status

    # Hard rows: the original already predicted them badly; the deletion left them there.
    same = verdict_checks(_evidence(10, (3.0, 0.40), original=((3.0, 0.40), (1.0, 0.75))), Thresholds())
    assert _status(same, "forget_accuracy") == "inconclusive"
    assert "the original model was as low" in next(c.detail for c in same if c.id == "forget_accuracy")
    # The deletion pushed them further down: that is its doing.
    pushed = verdict_checks(_evidence(11, (6.0, 0.05), original=((3.0, 0.40), (1.0, 0.75))), Thresholds())
    assert _status(pushed, "forget_accuracy") == "fail"
    # An original that fit them: a drop below held-out rows is over-forgetting.
    fine_before = verdict_checks(_evidence(12, (3.0, 0.40), original=((0.05, 1.0), (1.0, 0.75))), Thresholds())
    assert _status(fine_before, "forget_accuracy") == "fail"


def test_the_html_report_renders_in_a_real_browser(csv_model: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    """Headless Chromium draws the page (skipped where Chromium is not installed; the full check,
    with colours counted, is benchmarks/report_in_browser.sh)."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here")
    model, _, _ = csv_model
    learned = train_ids_of(model)
    assert forget(tmp_path, model, learned[:3], "m1.safetensors", "-q").exit_code == 0
    ids = tmp_path / "a.ids"
    ids.write_text("\n".join(learned[:3]) + "\n")
    page = tmp_path / "audit.html"
    run_cli("audit", tmp_path / "m1.safetensors", "-f", ids, "--original", model, "--report", page, "-q")
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    sizes = {}
    for name in ("audit", "blank"):
        shot = tmp_path / f"{name}.png"
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,1800",
             f"--screenshot={shot}", f"file://{tmp_path / (name + '.html')}"],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        sizes[name] = shot.stat().st_size
    assert sizes["audit"] > 10 * sizes["blank"]  # tables, text and two histograms, not an empty page


# ------------------------------------------------------------------------------ review findings


def test_rows_forgotten_before_a_data_change_can_still_be_deleted(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    model, data, _ = csv_model
    learned = train_ids_of(model)
    assert forget(tmp_path, model, learned[:2], "m1.safetensors", "-q").exit_code == 0
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines + ["newcomer,2,0.5,0.5,0.5"]) + "\n")  # some other change
    assert (
        forget(
            tmp_path, tmp_path / "m1.safetensors", learned[2:3], "m2.safetensors", "--allow-data-change", "-q"
        ).exit_code
        == 0
    )
    delete_rows(data, {learned[2]})
    assert run_cli("ledger", "show", tmp_path / "m2.safetensors", "-q").exit_code == 0
    delete_rows(data, set(learned[:2]))  # the rows forgotten before the change go too
    shown = run_cli("ledger", "show", tmp_path / "m2.safetensors", "-q")
    assert shown.exit_code == 0, shown.stderr


def test_forgotten_ids_lists_test_rows_too_and_deleting_them_is_accepted(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    from iau_cli.io.ids import read_forget_ids
    from iau_cli.recipes.train import restore

    model, data, _ = csv_model
    restored = restore(model)
    request = [restored.data.test.ids[0], train_ids_of(model)[0]]
    listed = tmp_path / "gone.txt"
    assert forget(tmp_path, model, request, "m1.safetensors", "--forgotten-ids", listed, "-q").exit_code == 0
    assert sorted(read_forget_ids(listed).ids) == sorted(request)
    delete_rows(data, set(read_forget_ids(listed).ids))
    assert run_cli("ledger", "show", tmp_path / "m1.safetensors", "-q").exit_code == 0
    audited = run_cli("audit", tmp_path / "m1.safetensors", "-f", listed, "--original", model, "--json", "-", "-q")
    assert audited.exit_code == 2  # the audit needs the rows: it comes before the deletion


def test_forgetting_a_whole_class_and_deleting_it_keeps_the_model_loadable(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    from iau_cli.recipes.train import restore

    model, data, _ = csv_model
    restored = restore(model)
    everyone = [*restored.data.train.ids, *restored.data.test.ids]
    labels = {line.split(",")[0]: line.split(",")[1] for line in data.read_text().splitlines()[1:]}
    class_two = [i for i in everyone if labels[i] == "2"]
    assert forget(tmp_path, model, class_two, "m1.safetensors", "-q").exit_code == 0
    delete_rows(data, set(class_two))
    learned = [i for i in train_ids_of(tmp_path / "m1.safetensors") if labels[i] != "2"]
    follow = forget(tmp_path, tmp_path / "m1.safetensors", learned[:2], "m2.safetensors", "-q")
    assert follow.exit_code == 0, follow.stderr


def test_auto_statistics_stay_as_trained_under_a_user_config(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    write_rows(data)
    config = tmp_path / "auto.yaml"
    config.write_text(
        "data:\n  train: rows.csv\n  test_fraction: 0.25\n  mean: auto\n  std: auto\n"
        "model:\n  name: logreg\ntrain:\n  epochs: 3\n"
    )
    assert run_cli("train", config, "--out", tmp_path / "a0.safetensors", "-q").exit_code == 0
    learned = train_ids_of(tmp_path / "a0.safetensors")
    assert forget(tmp_path, tmp_path / "a0.safetensors", learned[:2], "a1.safetensors", "-q").exit_code == 0
    delete_rows(data, set(learned[:2]))
    follow = forget(tmp_path, tmp_path / "a1.safetensors", learned[2:3], "a2.safetensors", "--config", config, "-q")
    assert follow.exit_code == 0, follow.stderr


def test_keyed_test_only_requests_get_their_own_digest(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests of test rows only must not share an ids digest (and so a mask)."""
    from iau_cli.recipes.train import restore

    model, _, _ = csv_model
    keys = tmp_path / "keys.txt"
    keys.write_text("a-long-operator-secret-0123456789\n")
    monkeypatch.setenv("IAU_ID_KEY_FILE", str(keys))
    tests = restore(model).data.test.ids
    assert forget(tmp_path, model, [tests[0]], "k1.safetensors", "-q").exit_code == 0
    assert forget(tmp_path, tmp_path / "k1.safetensors", [tests[1]], "k2.safetensors", "-q").exit_code == 0
    events = json.loads(read_metadata(tmp_path / "k2.safetensors")["iau.lineage"])
    assert events[1]["ids_digest"] != events[2]["ids_digest"]
    # the key file is an input: no output may replace it
    clobber = forget(tmp_path, model, [tests[2]], "k3.safetensors", "--json", keys, "--overwrite")
    assert_bad_input(clobber, "would overwrite the operator key file")


def test_ids_and_paths_are_never_read_as_rich_markup(csv_model: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    model, _, _ = csv_model
    odd = tmp_path / "m[bold]x.safetensors"
    result = forget(tmp_path, model, ["[/x]", "[bold]secret"], "x.safetensors", "--allow-missing")
    assert result.exit_code == 0, result.stderr
    assert "[bold]secret" in result.stdout
    odd.write_bytes(model.read_bytes())
    shown = run_cli("lineage", odd)
    assert shown.exit_code == 0 and "m[bold]x.safetensors" in shown.stdout


@pytest.mark.parametrize("flag", ["--out", "--report", "--forgotten-ids"])
def test_only_json_may_go_to_stdout(csv_model: tuple[Path, Path, list[str]], tmp_path: Path, flag: str) -> None:
    model, _, _ = csv_model
    result = forget(tmp_path, model, train_ids_of(model)[:2], "m1.safetensors", flag, "-")
    assert_bad_input(result, f"{flag} -: only --json can go to standard output")
    assert not (tmp_path / "-").exists()


def test_a_forgotten_record_that_lies_about_itself_is_refused(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    from iau_cli.io.checkpoint import load_checkpoint

    model, _, _ = csv_model
    learned = train_ids_of(model)
    assert forget(tmp_path, model, learned[:3], "m1.safetensors", "-q").exit_code == 0
    for hashes in ("", "!!!"):
        meta = read_metadata(tmp_path / "m1.safetensors")
        record = json.loads(meta["iau.forgotten"])
        record["hashes"] = hashes
        meta["iau.forgotten"] = json.dumps(record)
        crafted = tmp_path / "crafted.safetensors"
        save_file(load_checkpoint(tmp_path / "m1.safetensors").state_dict, str(crafted), metadata=meta)
        assert_bad_input(forget(tmp_path, crafted, learned[3:5], "c.safetensors"), "corrupt")


def test_outcomes_say_what_happened_to_each_requested_id(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    """--outcomes: one line per requested id, for replying to each requester."""
    import csv as csv_module

    from iau_cli.recipes.train import restore

    model, _, _ = csv_model
    learned = train_ids_of(model)
    held_out = list(restore(model).data.test.ids)[0]
    request = [learned[0], held_out, "never-a-user", learned[1], learned[0]]  # a duplicate too
    done = forget(tmp_path, model, request, "m1.safetensors", "--allow-missing", "--outcomes", tmp_path / "o.csv", "-q")
    assert done.exit_code == 0, done.stderr
    with open(tmp_path / "o.csv", newline="") as handle:
        rows = list(csv_module.DictReader(handle))
    assert [(r["id"], r["outcome"]) for r in rows] == [
        (learned[0], "erased"),
        (held_out, "test_row"),
        ("never-a-user", "not_found"),
        (learned[1], "erased"),
    ]
    assert len({r["request_sha256"] for r in rows}) == 1 and len(rows[0]["request_sha256"]) == 64
    # The next request, from the new model, as JSON lines: what was done before is said so.
    again = forget(
        tmp_path,
        tmp_path / "m1.safetensors",
        [learned[1], learned[2]],
        "m2.safetensors",
        "--outcomes",
        tmp_path / "o.jsonl",
        "-q",
    )
    assert again.exit_code == 0, again.stderr
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(x["id"], x["outcome"]) for x in lines] == [(learned[1], "already_forgotten"), (learned[2], "erased")]
    # Clear ids stay out of the JSON record.
    record = forget(tmp_path, tmp_path / "m2.safetensors", [learned[3]], "m3.safetensors", "--json", "-", "-q")
    assert "outcomes" not in json.loads(record.stdout)


def test_ledger_show_of_a_checkpoint_without_a_ledger_says_absent_with_no_rows_and_no_drift(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    from iau_cli.io.checkpoint import LEDGER_PREFIX

    model, _, _ = csv_model
    tensors = {k: v for k, v in load_file(str(model)).items() if not k.startswith(LEDGER_PREFIX)}
    bare = tmp_path / "bare.safetensors"
    save_file(tensors, str(bare), metadata=read_metadata(model))
    shown = json.loads(run_cli("ledger", "show", bare, "--json", "-", "-q").stdout)
    assert shown["status"] == "absent" and shown["rows"] is None and shown["drift"] is None
    assert "ledger refresh" in shown["detail"]
    assert "inf" not in run_cli("ledger", "show", bare).stdout


def test_every_record_names_the_data_it_read(csv_model: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    model, _, _ = csv_model
    learned = train_ids_of(model)
    fingerprint = json.loads(read_metadata(model)["iau.data"])["fingerprint"]["sha256"]
    done = forget(tmp_path, model, learned[:2], "m1.safetensors", "--json", "-", "-q")
    assert json.loads(done.stdout)["data_sha256"] == fingerprint
    ids = tmp_path / "m1.safetensors.ids"
    audited = run_cli("audit", tmp_path / "m1.safetensors", "-f", ids, "--json", "-", "-q")
    assert json.loads(audited.stdout)["data_sha256"] == fingerprint


def _difference_attack(parent: Path, child: Path) -> set[str] | None:
    """Finding 1 of the adversarial trial: total gradient over every data row − the child's ledger
    = Σ of the forgotten rows' gradients; try every pair of rows. None when there is no ledger."""
    import itertools

    import torch

    from iau_cli.core.gradients import per_sample_grads
    from iau_cli.recipes.train import restore

    ledger = restore(child).checkpoint.ledger_tensors
    if not ledger:
        return None
    original = restore(parent)  # the ledger was carried at the parent's parameters
    train = original.data.train
    x, y = train.fetch(np.arange(len(train)))
    grads = per_sample_grads(original.model, x, y)
    flat = torch.cat([grads[name].reshape(len(train), -1) for name in sorted(ledger)], dim=1).double().numpy()
    target = flat.sum(0) - torch.cat([ledger[name].reshape(-1) for name in sorted(ledger)]).double().numpy()
    best = min(itertools.combinations(range(len(train)), 2), key=lambda p: np.abs(target - flat[list(p)].sum(0)).sum())
    return {train.ids[i] for i in best}


def test_a_keyed_deletion_leaves_no_ledger_to_difference(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _, _ = csv_model
    gone = train_ids_of(model)[5:7]
    # Without a key the record is enumerable anyway (and says so); the attack is real: it names them.
    plain = forget(tmp_path, model, gone, "plain.safetensors", "-O", "rule=adam-sign", "-q")
    assert plain.exit_code == 0, plain.stderr
    assert _difference_attack(model, tmp_path / "plain.safetensors") == set(gone)
    # With an operator key the child keeps no ledger, and refreshing one is refused.
    keys = tmp_path / "keys.txt"
    keys.write_text("a-long-operator-secret-0123456789\n")
    monkeypatch.setenv("IAU_ID_KEY_FILE", str(keys))
    keyed = forget(tmp_path, model, gone, "keyed.safetensors", "-O", "rule=adam-sign", "--json", "-", "-q")
    assert keyed.exit_code == 0, keyed.stderr
    assert "operator key" in json.loads(keyed.stdout)["ledger"]["next"]
    assert _difference_attack(model, tmp_path / "keyed.safetensors") is None
    again = forget(tmp_path, model, gone, "now.safetensors", "--ledger-refresh", "now", "-q")
    assert again.exit_code == 0 and _difference_attack(model, tmp_path / "now.safetensors") is None
    refused = run_cli("ledger", "refresh", tmp_path / "keyed.safetensors", "--out", tmp_path / "r.safetensors")
    assert_bad_input(refused, "keyed", "differencing")


def test_a_re_recorded_fingerprint_does_not_name_keyed_deleted_rows(
    csv_model: tuple[Path, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21 (7): with a key, the row sum retaken by --allow-data-change is the training-time
    sum (in the original checkpoint, in clear) less the rows deleted since; in clear, a backup of
    the old data names them. Masked, the difference matches no row; the next deletion still works."""
    from iau_cli.io.rowprint import RowDigest
    from iau_cli.recipes.train import restore

    model, data, _ = csv_model
    keys = tmp_path / "keys.txt"
    keys.write_text("a-long-operator-secret-0123456789\n")
    monkeypatch.setenv("IAU_ID_KEY_FILE", str(keys))
    backup = restore(model).data.train  # what an attacker kept: the data as trained on
    learned = list(backup.ids)
    assert forget(tmp_path, model, learned[:1], "k1.safetensors", "-q").exit_code == 0
    delete_rows(data, {learned[0]})
    recorded = forget(
        tmp_path, tmp_path / "k1.safetensors", learned[1:2], "k2.safetensors", "--allow-data-change", "-q"
    )
    assert recorded.exit_code == 0, recorded.stderr
    fingerprint = json.loads(read_metadata(tmp_path / "k2.safetensors")["iau.data"])["fingerprint"]
    assert "key" in fingerprint["rows"]["train"]  # masked under the operator key
    trained = RowDigest.from_json(json.loads(read_metadata(model)["iau.data"])["fingerprint"]["rows"]["train"])
    difference = trained - RowDigest.from_json(fingerprint["rows"]["train"])
    row_sums = {backup.row_digest([r]).total for r in range(len(backup))}
    assert difference.count == 1 and difference.total not in row_sums  # names no deleted row
    # The job goes on: deleting the next request's row is accepted against the masked sum.
    delete_rows(data, {learned[1]})
    follow = forget(tmp_path, tmp_path / "k2.safetensors", learned[2:3], "k3.safetensors", "-q")
    assert follow.exit_code == 0, follow.stderr
    # Two retakes from one parent do not share a mask (their difference would unmask).
    again = forget(tmp_path, tmp_path / "k1.safetensors", learned[3:4], "k2b.safetensors", "--allow-data-change", "-q")
    assert again.exit_code == 0, again.stderr
    sibling = json.loads(read_metadata(tmp_path / "k2b.safetensors")["iau.data"])["fingerprint"]
    assert sibling["mask_nonce"] != fingerprint["mask_nonce"]
    assert sibling["rows"]["train"]["count"] == fingerprint["rows"]["train"]["count"] - 1  # one more row deleted
    assert sibling["rows"]["train"]["sum"] != fingerprint["rows"]["train"]["sum"]


def test_a_retargeted_data_symlink_is_read_and_its_change_noticed(tmp_path: Path) -> None:
    """Issue 21 (11): the config names current.csv -> v1.csv; the checkpoint records the link, not
    v1.csv, so once the link points at an edited v2.csv the next command reads v2 and refuses it."""
    import os

    write_rows(tmp_path / "v1.csv")
    write_rows(tmp_path / "v2.csv", seed=1)  # the same ids, other feature values
    os.symlink("v1.csv", tmp_path / "current.csv")
    config = tmp_path / "run.yaml"
    config.write_text(
        "data:\n  train: current.csv\n  test_fraction: 0.25\nmodel:\n  name: logreg\ntrain:\n  epochs: 2\n"
    )
    model = tmp_path / "m0.safetensors"
    assert run_cli("train", config, "--out", model, "-q").exit_code == 0
    recorded = json.loads(read_metadata(model)["iau.data"])["config"]["train"]
    assert recorded == str(tmp_path / "current.csv")
    learned = train_ids_of(model)
    assert forget(tmp_path, model, learned[:1], "m1.safetensors", "-q").exit_code == 0  # v1: accepted
    os.unlink(tmp_path / "current.csv")
    os.symlink("v2.csv", tmp_path / "current.csv")
    refused = forget(tmp_path, model, learned[1:2], "m2.safetensors")
    assert_bad_input(refused, "training data changed")
    assert not (tmp_path / "m2.safetensors").exists()
