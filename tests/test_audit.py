import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from iau_cli.core.metrics import auc, tpr_at_fpr, tug_of_war
from iau_cli.io.ids import read_forget_ids
from iau_cli.recipes.audit import AuditRequest, auc_null_se, audit, challenge_attack

from .helpers import assert_bad_input, run_cli


def test_separable_scores_give_auc_one_and_full_tpr() -> None:
    members = np.linspace(5, 6, 50)
    others = np.linspace(0, 1, 80)
    assert auc(members, others) == 1.0
    assert auc(others, members) == 0.0
    assert tpr_at_fpr(members, others, 0.01) == 1.0


def test_identical_distributions_give_auc_near_half() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.exponential(size=2000), rng.exponential(size=2000)
    # Tolerance: three standard errors of the AUC under the null.
    assert abs(auc(a, b) - 0.5) < 3 * auc_null_se(2000, 2000)
    accuracy = challenge_attack(a, b, folds=5, seed=0)
    assert abs(accuracy - 0.5) < 0.05


def test_tug_of_war_is_one_only_for_equal_accuracies() -> None:
    same = {"forget": 0.9, "retain": 0.99, "test": 0.95}
    assert tug_of_war(same, same) == 1.0
    assert tug_of_war({**same, "forget": 1.0}, same) == pytest.approx(0.9)


def _audit(checkpoint: Path, ids: Path, **kwargs: object):
    return audit(AuditRequest(checkpoint=str(checkpoint), forget=read_forget_ids(ids), device="cpu", **kwargs))


def test_attacks_separate_trained_from_retrained(memorizing_pair: dict) -> None:
    trained = _audit(memorizing_pair["original"], memorizing_pair["ids"])
    retrained = _audit(memorizing_pair["retrained"], memorizing_pair["ids"])
    assert trained.model.accuracy["forget"] > 0.95  # memorized
    assert trained.model.mia.loss_auc > 0.9
    assert trained.model.mia.challenge_accuracy > 0.8
    assert trained.model.mia.grad_norm_auc > 0.9  # per-sample gradients (torch.func) of fitted rows are small
    assert abs(retrained.model.mia.grad_norm_auc - 0.5) < 0.15
    assert abs(retrained.model.mia.loss_auc - 0.5) < 0.15
    assert retrained.model.mia.indiscernibility > trained.model.mia.indiscernibility + 0.3


def test_original_model_fails_the_audit_and_says_why(memorizing_pair: dict) -> None:
    result = _audit(memorizing_pair["original"], memorizing_pair["ids"])
    assert not result.passed
    failed = {c.name: c for c in result.checks if c.passed is False}
    assert "ids recorded as forgotten" in failed
    assert "60 id(s) never forgotten" in failed["ids recorded as forgotten"].detail
    assert "membership (loss AUC)" in failed
    assert "remembers" in failed["membership (loss AUC)"].detail


def test_against_a_retrain_with_another_seed_a_retrained_model_passes_and_the_original_does_not(
    memorizing_pair: dict, tmp_path: Path
) -> None:
    """Tug-of-War and the comparison with a reference that is not the audited model itself: close for
    two retrains (seeds differ, so the figures do too), far for the model that still holds the rows."""
    from iau_cli.recipes.unlearn import UnlearnRequest, unlearn

    other = tmp_path / "retrained-seed-7.safetensors"
    forget = read_forget_ids(memorizing_pair["ids"])
    request = UnlearnRequest(str(memorizing_pair["original"]), forget, str(other), method="retrain", device="cpu")
    unlearn(dataclasses.replace(request, options={"seed": 7}))
    retrained = _audit(memorizing_pair["retrained"], memorizing_pair["ids"], reference=str(other))
    original = _audit(memorizing_pair["original"], memorizing_pair["ids"], reference=str(other))
    assert retrained.passed, [c for c in retrained.checks if c.passed is False]
    assert not original.passed
    assert 0.85 <= retrained.comparison["tug_of_war"] < 1.0  # two seeds: close, not identical
    assert original.comparison["tug_of_war"] < retrained.comparison["tug_of_war"] - 0.1
    assert original.comparison["forget_accuracy_gap"] > 0.3 > abs(retrained.comparison["forget_accuracy_gap"])


def test_cli_exit_codes_per_sample_csv_and_json(memorizing_pair: dict, tmp_path: Path) -> None:
    ids = memorizing_pair["ids"]
    passing = run_cli(
        "audit", memorizing_pair["retrained"], "--forget", ids, "--reference", memorizing_pair["retrained"],
        "--per-sample", tmp_path / "scores.csv", "--json", tmp_path / "audit.json", "-q",
    )  # fmt: skip
    assert passing.exit_code == 0, passing.stderr
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert len(rows) == 60 and {r["id"] for r in rows} == set(read_forget_ids(ids).ids)
    payload = json.loads((tmp_path / "audit.json").read_text())
    assert payload["passed"] is True and payload["model"]["mia"]["loss_auc"] is not None
    failing = run_cli("audit", memorizing_pair["original"], "--forget", ids, "--report", tmp_path / "audit.md")
    assert failing.exit_code == 1
    assert "FAIL" in (tmp_path / "audit.md").read_text()
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("nobody\n")
    assert_bad_input(run_cli("audit", memorizing_pair["original"], "--forget", unknown), "not training rows")


def test_thorough_mode_runs_lira(memorizing_pair: dict) -> None:
    result = _audit(memorizing_pair["original"], memorizing_pair["ids"], shadow_models=2)
    assert result.model.mia.lira_auc is not None and result.model.mia.lira_auc > 0.8
    assert set(result.model.mia.lira_tpr_at_fpr) == {"0.01", "0.001"}


def test_lineage_chain_detects_tampered_weights(memorizing_pair: dict, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from iau_cli.io.checkpoint import LEDGER_PREFIX, load_checkpoint, read_metadata

    loaded = load_checkpoint(memorizing_pair["unlearned"])
    tampered = {k: v.clone() for k, v in loaded.state_dict.items()}
    first = next(iter(tampered))
    tampered[first] += 0.01
    tampered.update({LEDGER_PREFIX + k: v for k, v in loaded.ledger_tensors.items()})
    path = tmp_path / "tampered.safetensors"
    save_file(tampered, str(path), metadata=read_metadata(memorizing_pair["unlearned"]))
    result = _audit(path, memorizing_pair["ids"])
    chain = next(c for c in result.checks if c.name == "lineage chain")
    assert chain.passed is False and "weights differ" in chain.detail


def test_unlearned_model_moves_membership_toward_chance(memorizing_pair: dict) -> None:
    request = dict(original=str(memorizing_pair["original"]), reference=str(memorizing_pair["retrained"]))
    result = _audit(memorizing_pair["unlearned"], memorizing_pair["ids"], **request)
    assert result.original is not None and result.reference is not None
    assert result.model.mia.loss_auc < result.original.mia.loss_auc
    assert result.model.loss["forget"] > result.original.loss["forget"]


def test_lira_score_is_exact_where_the_confidence_rounds_to_one() -> None:
    from iau_cli.core.metrics import true_class_margin

    logits = torch.tensor([[40.0, 0.0, 0.0], [50.0, 0.0, 0.0], [0.0, 2.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 2])
    margins = true_class_margin(logits, labels)
    expected = [40 - math.log(2), 50 - math.log(2), 1.0 - math.log(math.exp(0.0) + math.exp(2.0))]
    assert margins.tolist() == pytest.approx(expected, rel=1e-12)
    # Rebuilt from a float32 loss, the first two saturate to one and the same value.
    p = torch.exp(-torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")).double()
    rebuilt = torch.log(p + 1e-30) - torch.log1p(-torch.clamp(p, max=1 - 1e-12))
    assert rebuilt[0] == rebuilt[1]


def _scores(rng: np.random.Generator, n: int, loss_scale: float, accuracy: float):
    from iau_cli.core.metrics import Predictions

    return Predictions(rng.exponential(loss_scale, size=n).astype(np.float32), rng.random(n) < accuracy)


def _evidence(
    seed: int, forget: tuple[float, float], *, n_forget: int = 150, n_pool: int = 800, proxy=(0.02, 1.0), **models
):
    """Per-row evidence of 4 classes: held-out rows with mean loss 1.0 and accuracy 0.75; forget
    rows with ``forget`` (mean loss, accuracy); proxy (retained) rows with ``proxy``; other models
    (``reference`` / ``original``) as (forget, pool) pairs of (mean loss, accuracy)."""
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, RowScores

    rng = np.random.default_rng(seed)
    labels_f, labels_p, labels_x = rng.integers(0, 4, n_forget), rng.integers(0, 4, n_pool), rng.integers(0, 4, 300)
    groups = Groups(labels_f, labels_p)

    def scores(f, pool=(1.0, 0.75), x=proxy):
        return RowScores(_scores(rng, n_forget, *f), _scores(rng, n_pool, *pool), _scores(rng, 300, *x))

    extra = {name: scores(*pair) for name, pair in models.items()}
    return Evidence(groups, Groups(labels_x, labels_p), scores(forget), **extra)


def _status(checks: list, check_id: str) -> str:
    return next(c.status for c in checks if c.id == check_id)


def test_removal_checks_are_two_sided_and_fail_an_over_forgotten_model() -> None:
    from iau_cli.recipes.audit import Thresholds, verdict_checks

    # Forget rows that score far *less* member-like than held-out rows, and are predicted far worse.
    over = verdict_checks(_evidence(0, (4.0, 0.30)), Thresholds())
    assert _status(over, "membership_auc") == "fail" and _status(over, "forget_accuracy") == "fail"
    assert "over-forgotten" in next(c.detail for c in over if c.id == "membership_auc")
    remembers = verdict_checks(_evidence(1, (0.05, 0.99)), Thresholds())
    assert _status(remembers, "membership_auc") == "fail" and _status(remembers, "forget_accuracy") == "fail"
    assert "remembers" in next(c.detail for c in remembers if c.id == "membership_auc")
    close = verdict_checks(_evidence(2, (1.0, 0.75)), Thresholds())
    assert _status(close, "membership_auc") == "pass" and _status(close, "forget_accuracy") == "pass"
    # Against a reference, row by row: the same rows under a model that never saw them.
    paired = verdict_checks(_evidence(3, (4.0, 0.30), reference=((1.0, 0.75), (1.0, 0.75))), Thresholds())
    assert _status(paired, "membership_auc") == "fail" and "paired" in next(c.detail for c in paired)


def test_a_deletion_that_truly_removed_the_rows_fails_at_most_at_the_stated_rate() -> None:
    """Many forget sets drawn from the null (forget rows like held-out rows): the family of checks,
    with the test-accuracy check against an original like the model, fails at a rate consistent with
    alpha; shifted forget rows (a no-op) fail nearly always."""
    from iau_cli.recipes.audit import Thresholds, verdict_checks

    runs = 150
    thresholds = Thresholds(alpha=0.05)
    false_alarms = sum(
        any(
            c.status == "fail"
            for c in verdict_checks(_evidence(s, (1.0, 0.75), n_forget=40, n_pool=300), thresholds, seed=s)
        )
        for s in range(runs)
    )
    # Binomial(150, ≤ 0.05): P(≥ 16) < 0.2%; a test that ignored the correction (two checks at
    # 5% each) or used a too-narrow null would exceed it.
    assert false_alarms <= 15, false_alarms
    noops = sum(
        any(
            c.status == "fail"
            for c in verdict_checks(_evidence(s, (0.3, 0.95), n_forget=40, n_pool=300), thresholds, seed=s)
        )
        for s in range(40)
    )
    assert noops >= 38, noops


def test_holm_holds_the_family_to_alpha() -> None:
    from iau_cli.core.verdict import holm

    assert [r for r, _ in holm([0.001, 0.02, 0.04], 0.05)] == [True, True, True]
    assert [r for r, _ in holm([0.001, 0.03, 0.04], 0.05)] == [True, False, False]  # 0.03 > 0.05 / 2
    assert [level for _, level in holm([0.5, 0.001], 0.05)] == [0.05, 0.025]


def test_the_null_of_the_auc_is_calibrated_and_the_normal_tail_takes_over_beyond_it() -> None:
    from iau_cli.core.verdict import Groups, stratified_auc_test

    rng = np.random.default_rng(0)
    p_values = []
    for _ in range(200):
        labels_f, labels_p = rng.integers(0, 3, 25), rng.integers(0, 3, 300)
        # Class-dependent scores: class mix must not matter once the pool is weighted.
        forget, pool = rng.normal(labels_f, 1.0), rng.normal(labels_p, 1.0)
        p_values.append(stratified_auc_test(forget, pool, Groups(labels_f, labels_p), rng).p_two_sided)
    assert 0.02 <= np.mean(np.array(p_values) <= 0.1) <= 0.2
    labels = rng.integers(0, 3, 100)
    far = stratified_auc_test(
        rng.normal(5, 1, 100), rng.normal(0, 1, 300), Groups(labels, rng.integers(0, 3, 300)), rng
    )
    assert far.p_two_sided < 1e-6  # far below the 1/2001 a count of permutations can show


def test_a_check_that_could_not_have_failed_is_inconclusive_not_a_pass() -> None:
    from iau_cli.recipes.audit import Thresholds, verdict_checks

    # The model generalizes: the retained rows it holds look like held-out rows, so a model that
    # kept the forget rows would pass too; the checks cannot tell.
    checks = verdict_checks(_evidence(4, (1.0, 0.75), proxy=(1.0, 0.76)), Thresholds())
    assert _status(checks, "membership_auc") == "inconclusive" and _status(checks, "forget_accuracy") == "inconclusive"
    assert "could not have told" in next(c.detail for c in checks if c.id == "membership_auc")
    # With --original: an original as close as the retained rows says the same.
    checks = verdict_checks(_evidence(5, (1.0, 0.75), original=((0.95, 0.76), (1.0, 0.75))), Thresholds())
    membership = next(c for c in checks if c.id == "membership_auc")
    assert membership.status == "inconclusive" and "the original" in membership.detail
    assert membership.noop_distance is not None and membership.noop_distance < membership.detectable
    # ... but a value far outside fails whatever the power: a check can always fail on its far side.
    checks = verdict_checks(_evidence(6, (4.0, 0.3), proxy=(1.0, 0.76)), Thresholds())
    assert _status(checks, "membership_auc") == "fail"
    # A memorizing model (retained rows at loss 0.02) makes the same checks real tests that pass.
    checks = verdict_checks(_evidence(7, (1.0, 0.75)), Thresholds())
    assert _status(checks, "membership_auc") == "pass" and _status(checks, "forget_accuracy") == "pass"


def test_the_test_accuracy_limit_counts_its_own_sampling_error() -> None:
    from iau_cli.core.verdict import drop_test

    rng = np.random.default_rng(0)
    base = rng.random(500) < 0.8
    audited = base.copy()
    audited[np.flatnonzero(base)[:13]] = False  # 2.6 points lost on 500 rows: within its error of 2
    assert drop_test(base, audited, 0.02).p_greater > 0.05
    audited[np.flatnonzero(base)[:60]] = False  # 12 points: far beyond
    assert drop_test(base, audited, 0.02).p_greater < 1e-6


def test_cli_inconclusive_exits_1_unless_accepted(memorized: Path, train_ids: list[str], tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(train_ids[:40:2]) + "\n")
    assert run_cli("unlearn", memorized, "-f", ids, "-o", tmp_path / "u.safetensors", "-q").exit_code == 0
    plain = run_cli("audit", tmp_path / "u.safetensors", "-f", ids, "--json", "-", "-q")
    assert plain.exit_code == 1, plain.stderr
    payload = json.loads(plain.stdout)
    statuses = {c["name"]: c["status"] for c in payload["checks"]}
    assert statuses["forget accuracy"] == "inconclusive" and "fail" not in statuses.values()
    assert payload["verdict"] == "inconclusive" and payload["passed"] is False
    accepted = run_cli("audit", tmp_path / "u.safetensors", "-f", ids, "--accept-inconclusive", "-q")
    assert accepted.exit_code == 0, accepted.stdout


def test_original_must_be_an_ancestor(memorizing_pair: dict, small_checkpoint: Path) -> None:
    ids = memorizing_pair["ids"]
    for original in (memorizing_pair["unlearned"], small_checkpoint):
        result = run_cli("audit", memorizing_pair["unlearned"], "-f", ids, "--original", original)
        assert_bad_input(result, "is not an ancestor")
    ok = run_cli(
        "audit", memorizing_pair["unlearned"], "-f", ids, "--original", memorizing_pair["original"], "--json", "-", "-q"
    )
    assert ok.exit_code in (0, 1), ok.stderr  # pass or fail is the deletion's business; the ancestor is accepted
    assert json.loads(ok.stdout)["original"]["accuracy"]["forget"] > 0.9


def test_a_cleanup_audit_accepts_forget_figures_below_the_retrained_model() -> None:
    """Rows whose labels are wrong may end predicted (as labelled) less often than a retrained
    model predicts them; for an erasure that is over-forgetting and fails, for a cleanup it passes."""
    from iau_cli.recipes.audit import Thresholds, verdict_checks

    below = _evidence(8, (4.0, 0.30), reference=((1.0, 0.75), (1.0, 0.75)))
    assert _status(verdict_checks(below, Thresholds()), "forget_accuracy") == "fail"
    assert _status(verdict_checks(below, Thresholds(), cleanup=True), "forget_accuracy") == "pass"
    above = _evidence(9, (0.05, 0.99), reference=((1.0, 0.75), (1.0, 0.75)))
    assert _status(verdict_checks(above, Thresholds(), cleanup=True), "forget_accuracy") == "fail"


def test_the_held_out_pool_is_the_whole_evaluation_half(memorizing_pair: dict) -> None:
    from iau_cli.recipes.train import restore

    result = _audit(memorizing_pair["retrained"], memorizing_pair["ids"])
    evaluation = restore(memorizing_pair["retrained"], device="cpu").data.test.halves()[1]
    assert result.model.mia.non_members == result.model.test_rows == len(evaluation) > 60  # not 60 drawn rows
    assert result.verdict in ("pass", "inconclusive") and all(c.id for c in result.checks)
    assert result.to_dict()["alpha"] == 0.01
    # Evidence that survives the rows' deletion: per-row scores without ids, their mean the AUC.
    ranks = result.to_dict()["row_scores"]["nonmember_rank"]
    assert len(ranks) == 60 and ranks == sorted(ranks)
    assert abs(np.mean(ranks) - result.model.mia.loss_auc) < 1e-9
    assert "train-" not in json.dumps(result.to_dict()["row_scores"])


def _restored_rows(memorizing_pair: dict):
    from iau_cli.recipes.audit import audit_rows
    from iau_cli.recipes.train import restore

    restored = restore(memorizing_pair["original"], device="cpu")
    ids = read_forget_ids(memorizing_pair["ids"]).ids
    return restored, audit_rows(restored, ids, seed=0)


def _evidence_for(restored, rows, model, request):
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, model_figures

    train, test = restored.data.train, restored.data.test
    _, scores = model_figures(restored, model, rows, request)
    pool_labels = test.labels[rows.nonmember]
    return Evidence(
        Groups(train.labels[rows.forget], pool_labels), Groups(train.labels[rows.proxy], pool_labels), scores
    )


def test_thorough_mode_tells_an_overshoot_from_retraining_and_from_a_noop(memorizing_pair: dict) -> None:
    """Per row against shadow models: the retrained model passes, the original (a no-op) fails as
    remembering, and a deletion that pushed every forget row far down fails as over-forgotten."""
    import copy

    from iau_cli.core.methods import MethodName, get_method
    from iau_cli.recipes.audit import Thresholds, shadow_scores, verdict_checks
    from iau_cli.recipes.train import restore
    from iau_cli.recipes.unlearn import build_context, plan_rows

    restored, rows = _restored_rows(memorizing_pair)
    spec = get_method(MethodName.GRADIENT_ASCENT)
    context = build_context(restored, plan_rows(restored, rows.forget.tolist()), model=copy.deepcopy(restored.model))
    overshoot = spec.run(context, spec.parse_options({"epochs": 20})).model
    models = {
        "retrained": restore(memorizing_pair["retrained"], device="cpu").model,
        "original": restored.model,
        "overshoot": overshoot,
    }
    request = AuditRequest(checkpoint="", forget=read_forget_ids(memorizing_pair["ids"]), shadow_models=3)
    z = shadow_scores(restored, rows, request, models)
    status = {}
    for name, model in models.items():
        evidence = _evidence_for(restored, rows, model, request)
        evidence.shadow = {"audited": z[name]}
        check = next(c for c in verdict_checks(evidence, Thresholds()) if c.id == "per_row_shadow")
        status[name] = (check.status, check.detail)
    assert status["retrained"][0] == "pass", status["retrained"]
    assert status["original"][0] == "fail" and "remembers" in status["original"][1]
    assert status["overshoot"][0] == "fail" and "over-forgotten" in status["overshoot"][1]
    # Outside the shadows' range: the overshoot's forget rows below every shadow far more often
    # than held-out rows are.
    below = lambda name: float(np.mean(z[name].forget_side == -1))  # noqa: E731
    assert below("overshoot") > 0.5 > below("retrained")


def test_a_model_retrained_without_a_pool_passes_forget_sets_drawn_from_it(memorizing_pair: dict) -> None:
    """A model that never saw a pool of 100 rows, audited on 30 forget sets drawn from the pool:
    fails at a rate consistent with alpha; the original (which saw them) fails nearly always."""
    from iau_cli.core.metrics import Predictions, predict
    from iau_cli.core.training import RowPartition, train_model
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, RowScores, Thresholds, heldout_pool, matched_sample, verdict_checks
    from iau_cli.recipes.train import restore

    restored = restore(memorizing_pair["original"], device="cpu")
    learned = restored.partition().learn
    pool = np.random.default_rng(0).choice(learned, size=100, replace=False)
    kept = np.setdiff1d(learned, pool)
    retrained, _ = train_model(
        restored.config, restored.data, RowPartition(kept, restored.partition().val), restored.device
    )
    train_split, test_split = restored.data.train, restored.data.test
    held_out = heldout_pool(test_split)
    labels = train_split.labels
    outcomes: dict[str, list[bool]] = {"retrained": [], "original": []}
    for name, model in (("retrained", retrained), ("original", restored.model)):
        # The audit's own per-row predictions, once per model; each forget set takes its rows.
        every = predict(model, train_split, np.arange(len(train_split)), restored.device)
        heldout = predict(model, test_split, held_out, restored.device)
        for s in range(30):
            forget = np.sort(np.random.default_rng(s).choice(pool, size=25, replace=False))
            proxy = matched_sample(kept, labels, labels[forget], 40, s)
            rows = {key: Predictions(every.losses[r], every.correct[r]) for key, r in (("f", forget), ("x", proxy))}
            scores = RowScores(rows["f"], heldout, rows["x"])
            groups = Groups(labels[forget], test_split.labels[held_out])
            evidence = Evidence(groups, Groups(labels[proxy], groups.pool_labels), scores)
            checks = verdict_checks(evidence, Thresholds(alpha=0.05), seed=s)
            outcomes[name].append(any(c.status == "fail" for c in checks))
    assert sum(outcomes["retrained"]) <= 6, outcomes["retrained"]
    assert sum(outcomes["original"]) >= 28, outcomes["original"]


def test_a_check_whose_figure_cannot_vary_is_inconclusive_not_a_pass() -> None:
    """Five forget rows of classes whose every held-out row is predicted right: the forget-accuracy
    null has no spread, so the check could not have failed — inconclusive, not a powered pass."""
    from iau_cli.core.metrics import Predictions
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, RowScores, Thresholds, overall_verdict, verdict_checks

    rng = np.random.default_rng(0)
    forget_labels, pool_labels = np.zeros(5, dtype=int), rng.integers(0, 2, 300)
    pool = Predictions(rng.exponential(1.0, 300).astype(np.float32), pool_labels == 0)  # class 0 always right
    forget = Predictions(rng.exponential(1.0, 5).astype(np.float32), np.ones(5, dtype=bool))
    proxy = Predictions(rng.exponential(1.0, 200).astype(np.float32), np.ones(200, dtype=bool))
    evidence = Evidence(
        Groups(forget_labels, pool_labels),
        Groups(np.zeros(200, dtype=int), pool_labels),
        RowScores(forget, pool, proxy),
    )
    checks = verdict_checks(evidence, Thresholds())
    accuracy = next(c for c in checks if c.id == "forget_accuracy")
    assert accuracy.status == "inconclusive" and "cannot vary" in accuracy.detail
    assert overall_verdict(checks) == "inconclusive"


def _phi_scores(phi: np.ndarray):
    """Predictions whose φ is ``phi`` (loss and correctness as for two classes)."""
    from iau_cli.core.metrics import Predictions

    p = 1 / (1 + np.exp(-phi))
    return Predictions((-np.log(p)).astype(np.float32), phi > 0, margins=phi)


def test_reference_targets_hold_the_null_where_the_training_labels_are_noisy() -> None:
    """A split whose training labels are partly wrong and whose test labels are clean (builtin:noisy):
    a model that never saw the forget rows gets the wrong-label rows wrong, so the raw comparison
    with clean held-out rows calls it over-forgotten. With the stored targets (what models that
    never saw a row give it) as a second witness it passes; a no-op and an overshoot still fail."""
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, ReferenceTargets, RowScores, Thresholds, verdict_checks

    rng = np.random.default_rng(3)
    n_forget, n_pool, n_proxy = 200, 800, 300
    wrong = rng.random(n_forget) < 0.3  # forget rows whose (training) label is wrong
    target_forget = np.where(wrong, -2.5, 1.5) + rng.normal(0, 0.5, n_forget)
    target_pool = 1.5 + rng.normal(0, 0.5, n_pool)
    targets = ReferenceTargets(target_forget, target_pool, np.full(n_proxy, 1.5))
    pool = _phi_scores(target_pool + rng.normal(0, 1.0, n_pool))
    proxy = _phi_scores(np.full(n_proxy, 8.0))  # retained rows, memorized
    groups = Groups(np.zeros(n_forget, int), np.zeros(n_pool, int))
    proxy_groups = Groups(np.zeros(n_proxy, int), np.zeros(n_pool, int))

    def statuses(forget_phi: np.ndarray, with_targets: bool) -> dict[str, str]:
        scores = RowScores(_phi_scores(forget_phi), pool, proxy)
        evidence = Evidence(groups, proxy_groups, scores, targets=targets if with_targets else None)
        return {c.id: c.status for c in verdict_checks(evidence, Thresholds(), seed=1)}

    retrained = target_forget + rng.normal(0, 1.0, n_forget)
    raw = statuses(retrained, with_targets=False)
    assert raw["membership_auc"] == "fail" and raw["forget_accuracy"] == "fail"  # the false alarm
    fixed = statuses(retrained, with_targets=True)
    assert fixed["membership_auc"] == "pass" and "fail" not in fixed.values()
    noop = statuses(np.full(n_forget, 8.0), with_targets=True)
    assert noop["membership_auc"] == "fail" and noop["forget_accuracy"] == "fail"
    assert statuses(target_forget - 3.0, with_targets=True)["membership_auc"] == "fail"  # every row pushed past


def test_jointly_rejects_only_where_both_tests_reject_the_same_way() -> None:
    from iau_cli.core.verdict import Test, jointly

    up = Test(0.7, 0.5, 0.02, 1e-6, 5e-7, p_less=1.0)
    down = Test(0.3, 0.5, 0.02, 1e-6, 1.0, p_less=5e-7)
    flat = Test(0.5, 0.5, 0.02, 1.0, 0.5, p_less=0.5)
    assert jointly(up, up).p_two_sided == pytest.approx(1e-6)
    assert jointly(up, flat).p_two_sided == 1.0 and jointly(up, down).p_two_sided == 1.0
    assert jointly(down, down).p_less == 5e-7 and jointly(up, flat).statistic == 0.7


def test_the_reference_witness_judges_a_retrained_model_but_never_the_rule_that_aimed_at_it(
    memorizing_pair: dict,
) -> None:
    """The retrained model (method retrain carries the original's table) is judged with the witness;
    the default rule's deletion moved its rows to those very targets, so its audit leaves them out
    and says so — with them it would pass whatever the raw checks found."""
    retrained = _audit(memorizing_pair["retrained"], memorizing_pair["ids"])
    membership = next(c for c in retrained.checks if c.id == "membership_auc")
    assert "against the reference targets" in membership.detail and membership.status != "fail"
    unlearned = _audit(memorizing_pair["unlearned"], memorizing_pair["ids"])
    assert any("reference targets not used: the targeted rule" in n for n in unlearned.notes)
    assert all("against the reference targets" not in c.detail for c in unlearned.checks)


def test_opposite_verdicts_of_the_raw_check_and_the_witness_are_inconclusive() -> None:
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, ReferenceTargets, RowScores, Thresholds, verdict_checks

    rng = np.random.default_rng(5)
    n_forget, n_pool = 200, 800
    target_pool = 1.5 + rng.normal(0, 0.5, n_pool)
    pool = _phi_scores(target_pool + rng.normal(0, 1.0, n_pool))
    # forget rows more confident than held-out rows (raw: remembers), but far below their own
    # targets (the witness: over-forgotten)
    targets = ReferenceTargets(np.full(n_forget, 7.0), target_pool, np.full(300, 1.5))
    scores = RowScores(_phi_scores(4.0 + rng.normal(0, 0.5, n_forget)), pool, _phi_scores(np.full(300, 8.0)))
    groups = Groups(np.zeros(n_forget, int), np.zeros(n_pool, int))
    evidence = Evidence(groups, Groups(np.zeros(300, int), np.zeros(n_pool, int)), scores, targets=targets)
    membership = next(c for c in verdict_checks(evidence, Thresholds(), seed=2) if c.id == "membership_auc")
    assert membership.status == "inconclusive" and "opposite ways" in membership.detail
    raw = next(
        c for c in verdict_checks(dataclasses.replace(evidence, targets=None), Thresholds()) if c.id == "membership_auc"
    )
    assert raw.status == "fail"


def test_the_shadow_models_are_the_raw_checks_witness_where_the_training_labels_are_noisy() -> None:
    """Thorough mode, no stored targets (a default-rule deletion): the raw comparison calls a model
    that never saw the wrong-label forget rows over-forgotten; the shadows, which never saw them
    either, put those rows where the model does, so the check may not fail. A no-op and an overshoot
    still fail, the overshoot on both the raw check and the per-row one."""
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, RowScores, ShadowZ, Thresholds, verdict_checks

    rng = np.random.default_rng(4)
    n_forget, n_pool, n_proxy = 200, 800, 300
    wrong = rng.random(n_forget) < 0.3
    shadow_forget = np.where(wrong, -2.5, 1.5) + rng.normal(0, 0.5, n_forget)  # the shadows' mean φ
    shadow_pool = 1.5 + rng.normal(0, 0.5, n_pool)
    pool_phi = shadow_pool + rng.normal(0, 1.0, n_pool)
    held_back = np.arange(0, n_proxy, 3)
    proxy_phi = np.full(n_proxy, 8.0)  # retained rows, memorized
    groups = Groups(np.zeros(n_forget, int), np.zeros(n_pool, int))
    proxy_groups = Groups(np.zeros(n_proxy, int), np.zeros(n_pool, int))

    def statuses(forget_phi: np.ndarray, thorough: bool) -> dict[str, str]:
        scores = RowScores(_phi_scores(forget_phi), _phi_scores(pool_phi), _phi_scores(proxy_phi))
        evidence = Evidence(groups, proxy_groups, scores)
        if thorough:
            z = ShadowZ(
                forget_phi - shadow_forget,
                pool_phi - shadow_pool,
                proxy_phi[held_back] - 1.5,
                np.zeros(n_forget, int),
                np.zeros(n_pool, int),
                held_back,
            )
            evidence.shadow = {"audited": z}
        checks = verdict_checks(evidence, Thresholds(), seed=1)
        return {c.id: c.status for c in checks} | {"details": " ".join(c.detail for c in checks)}

    retrained = shadow_forget + rng.normal(0, 1.0, n_forget)
    raw = statuses(retrained, thorough=False)
    assert raw["membership_auc"] == "fail" and raw["forget_accuracy"] == "fail"  # the false alarm
    fixed = statuses(retrained, thorough=True)
    assert fixed["membership_auc"] == "pass" and fixed["per_row_shadow"] == "pass", fixed
    assert fixed["forget_accuracy"] != "fail", fixed  # (inconclusive here: held-out accuracy 0.92 leaves no room)
    assert "against the shadow models" in fixed["details"]
    noop = statuses(np.full(n_forget, 8.0), thorough=True)
    assert noop["membership_auc"] == "fail" and noop["per_row_shadow"] == "fail"
    overshoot = statuses(shadow_forget - 3.0, thorough=True)
    assert overshoot["membership_auc"] == "fail" and overshoot["per_row_shadow"] == "fail"


def test_shadow_models_train_on_what_a_retrain_would_learn(memorizing_pair: dict, monkeypatch) -> None:
    """Each shadow learns every retained row but the few held back for power (not a random half:
    a half-data shadow is not exchangeable with a retrain), with the retrain's validation rows and a
    seed other than the recipe's (that seed's shadow would be the retrain itself), never a forget or
    held-out row; with --original nothing is held back (the original gives the power figure)."""
    import iau_cli.recipes.audit as audit_module
    from iau_cli.recipes.audit import SHADOW_HELD_BACK, shadow_scores

    restored, rows = _restored_rows(memorizing_pair)
    seen = []
    real = audit_module.train_model

    def recording(config, data, partition, device, **kwargs):
        seen.append((partition.learn.copy(), partition.val.copy(), config.train.seed))
        return real(config, data, partition, device, **kwargs)

    monkeypatch.setattr(audit_module, "train_model", recording)
    forget_ids = read_forget_ids(memorizing_pair["ids"])
    request = AuditRequest(checkpoint="", forget=forget_ids, shadow_models=2)
    z = shadow_scores(restored, rows, request, {"original": restored.model})["original"]
    held = rows.proxy[z.held_back]
    assert len(held) == min(len(rows.proxy), SHADOW_HELD_BACK) and len(z.proxy) == len(held)
    seeds = [seed for _, _, seed in seen]
    assert len(seeds) == 2 and len(set(seeds)) == 2 and restored.config.train.seed not in seeds
    val = restored.partition(exclude=set(forget_ids.ids)).val
    for learn, shadow_val, _ in seen:
        np.testing.assert_array_equal(learn, np.setdiff1d(rows.retain, held))
        np.testing.assert_array_equal(shadow_val, val)
        assert not np.isin(learn, rows.forget).any() and not np.isin(shadow_val, rows.forget).any()
    seen.clear()
    with_original = dataclasses.replace(request, original="original.safetensors")
    z = shadow_scores(restored, rows, with_original, {"original": restored.model})["original"]
    assert len(z.held_back) == 0 and all(np.array_equal(learn, rows.retain) for learn, _, _ in seen)


def test_a_shadow_seed_is_never_the_recipes() -> None:
    from iau_cli.recipes.audit import shadow_seed

    first = shadow_seed(-1, 0, 0)
    assert shadow_seed(first, 0, 0) != first  # a recipe with that very seed gets another
    assert len({shadow_seed(0, 0, k) for k in range(8)}) == 8 and shadow_seed(0, 1, 0) != shadow_seed(0, 0, 0)


def _shadow_evidence(forget_z: np.ndarray, pool_z: np.ndarray, forget_phi: np.ndarray, **kwargs):
    """Evidence whose raw scores are ``forget_phi`` against a fixed held-out pool, with shadow z-scores."""
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, RowScores, ShadowZ

    rng = np.random.default_rng(9)
    n_forget, n_pool = len(forget_phi), len(pool_z)
    pool = _phi_scores(1.5 + rng.normal(0, 1.0, n_pool))
    held_back = kwargs.pop("held_back", np.arange(0, 300, 3))
    proxy_z = kwargs.pop("proxy_z", np.full(len(held_back), 6.0))
    evidence = Evidence(
        Groups(np.zeros(n_forget, int), np.zeros(n_pool, int)),
        Groups(np.zeros(300, int), np.zeros(n_pool, int)),
        RowScores(_phi_scores(forget_phi), pool, _phi_scores(np.full(300, 8.0))),
        **kwargs,
    )
    zero = np.zeros(n_forget, int)
    evidence.shadow = {"audited": ShadowZ(forget_z, pool_z, proxy_z, zero, np.zeros(n_pool, int), held_back)}
    return evidence


def test_the_shadow_witness_is_inconclusive_when_it_contradicts_or_cannot_see() -> None:
    """Raw checks against the shadow witness: opposite verdicts are inconclusive; a witness whose
    power cannot be measured (no --original, no held-back rows) cannot vouch for a pass; with
    --reference the paired tests decide alone (no witness)."""
    from iau_cli.recipes.audit import RowScores, Thresholds, verdict_checks

    rng = np.random.default_rng(6)
    n_forget, n_pool = 200, 800
    # raw: forget rows far less confident than held-out rows (over-forgotten); shadows: above them
    evidence = _shadow_evidence(rng.normal(1.0, 1.0, n_forget), rng.normal(0, 1.0, n_pool), np.full(n_forget, -3.0))
    membership = next(c for c in verdict_checks(evidence, Thresholds(), seed=1) if c.id == "membership_auc")
    assert membership.status == "inconclusive" and "the shadow models point opposite ways" in membership.detail
    # raw and shadows both see nothing; the witness has no rows to measure its power on
    alike = rng.normal(0, 1.0, n_forget)
    blind = _shadow_evidence(
        alike,
        rng.normal(0, 1.0, n_pool),
        1.5 + rng.normal(0, 1.0, n_forget),
        held_back=np.zeros(0, int),
        proxy_z=np.zeros(0),
    )
    membership = next(c for c in verdict_checks(blind, Thresholds(), seed=1) if c.id == "membership_auc")
    assert membership.status == "inconclusive" and "its power unknown" in membership.detail
    # with --reference: no witness joins the paired tests
    reference = RowScores(_phi_scores(np.full(n_forget, 1.5)), blind.audited.pool, blind.audited.proxy)
    paired = dataclasses.replace(blind, reference=reference)
    checks = verdict_checks(paired, Thresholds(), seed=1)
    assert all("against the shadow models" not in c.detail for c in checks if c.id != "per_row_shadow")


def test_phi_of_no_rows_is_empty(memorizing_pair: dict) -> None:
    from iau_cli.recipes.audit import _phi

    restored, _ = _restored_rows(memorizing_pair)
    request = AuditRequest(checkpoint="", forget=read_forget_ids(memorizing_pair["ids"]))
    assert _phi(restored.model, restored, restored.data.train, np.zeros(0, dtype=np.int64), request).shape == (0,)
