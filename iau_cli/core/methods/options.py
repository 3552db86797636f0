"""Every method's options, without torch.

Kept apart from the methods themselves so that ``iau unlearn --help`` can list each method's
``-O`` keys while staying fast (the methods import torch; this module does not). Which method
takes which: :data:`iau_cli.core.methods.catalog.CATALOG`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iau_cli.config import Checked, help_field

DEFAULT_LADDER = "1.0"
"""The targeted rule's anchor weights, strongest first, when neither ``ladder`` nor ``correction`` is
given: one weight, with multiplier rounds (``rounds``) where its rows lag (BENCHMARKS §1: the weight
chosen on purchase-mlp, mixed-mlp and LeNet-5 and checked on logistic regression and ResNet-18;
the rounds and their acceptance chosen on seed 0 of the first three)."""


def _check_lr(lr: float | None) -> list[str]:
    return [f"lr: {lr} must be a positive number (or unset: the recipe's)"] if lr is not None and not lr > 0 else []


@dataclass(frozen=True)
class IauOptions(Checked):
    """Options of the IAU method."""

    rule: Literal["auto", "targeted", "matched", "adam-sign"] = help_field(
        "Step rule: auto (targeted when the checkpoint has reference targets, else matched), targeted (each "
        "forget row to what models that never saw it output), matched (held-out loss quantiles) or adam-sign "
        "(the reference's one step).",
        default="auto",
    )
    purpose: Literal["erase", "cleanup"] = help_field(
        "matched: erase (deletion requests: forget rows end up looking held-out) or cleanup (mislabeled or "
        "poisoned rows: pushed away one-sided while held-out accuracy improves).",
        default="erase",
    )
    step_size: float | None = help_field(
        "Adam learning rate. Default: targeted 2e-3 (decayed linearly to a tenth); matched 2e-3 (erase) / 1e-2 (cleanup); adam-sign 1e-3 (the "
        "reference).",
        default=None,
    )
    steps: int | None = help_field(
        "targeted / matched: the most Adam steps (default 150 / 300); adam-sign: Adam steps (default 1, the "
        "reference).",
        default=None,
    )
    correction: float | None = help_field(
        "Weight of the correction. Default: targeted 1.0 (the ladder's; logits of retained and held-out rows "
        "held to θ*'s; given, it replaces the ladder, with its rounds: rounds=0 for one run); "
        "matched 0.03 (erase, logit anchor) / 1.0 (cleanup, cross-entropy); adam-sign 1.0. 0 turns it off.",
        default=None,
    )
    forget_batch: int = help_field("matched: forget rows per step.", default=256)
    retain_batch: int | None = help_field(
        "targeted / matched: retained rows sampled per step (default 128 targeted, as many held-out rows beside "
        "them; 128 erase / 512 cleanup).",
        default=None,
    )
    band: float = help_field("matched: a row within ±band of its target log-loss is left alone.", default=0.25)
    warmup: int = help_field("matched: steps of linear learning-rate warm-up.", default=5)
    retarget_every: int = help_field(
        "matched: re-measure the held-out losses and re-rank the forget rows every this many steps.", default=5
    )
    tol_scale: float = help_field(
        "matched erase: stop once forget accuracy is within max(0.02, tol_scale/√forget rows) of held-out and "
        "the loss AUC within 1.5·tol_scale null standard errors of 0.5 (at least 0.01).",
        default=1.0,
    )
    target_level: float = help_field("matched cleanup: the held-out loss quantile each row is pushed to.", default=0.99)
    patience: int = help_field(
        "matched cleanup: stop after this many checks without a one-point held-out accuracy gain.", default=8
    )
    retain_ce: float | None = help_field(
        "targeted: weight of cross-entropy descent on the sampled retained rows (the paper's correction; "
        "re-fits retained rows a request disturbed). Default 0.",
        default=None,
    )
    ladder: str | None = help_field(
        "targeted: anchor weights to try in turn, strongest first (see ladder_from), each with its rounds: the "
        "first whose forget rows are accepted (accept_rms) is kept, else the nearest. Unset: 1.0, or correction "
        "when it is given.",
        default=None,
    )
    ladder_from: Literal["theta", "previous"] = help_field(
        "targeted ladder: where each weight after the first starts: theta (θ* again) or previous (where "
        "the refused weight ended; the anchor stays θ*'s).",
        default="theta",
    )
    rounds: int = help_field(
        "targeted: at each anchor weight, up to this many more runs while the rows are not accepted "
        "(accept_rms), each going on from the last with every row's target moved by the gap it was left at "
        "(the method of multipliers).",
        default=3,
    )
    midcourse: float = help_field(
        "targeted: at this fraction of each run's steps, every row's aim is moved by the gap it is at then "
        "(one multiplier update inside the run, so its late steps settle the rows at their targets rather "
        "than above them); 0 turns it off. Measured, not adopted: fewer runs, but chains lose ToW (BENCHMARKS §1).",
        default=0.0,
    )
    target_scale: float = help_field(
        "targeted: every stored target times this (toward p_y = 1/2, where φ = 0): below 1 shrinks the "
        "targets toward what retrained models give a row on average (the stored ones average two references "
        "and are spread wider than that). Rows without a stored target (learned after training) keep their "
        "held-out median target, unscaled. Measured, not adopted: the per-example attacker gets stronger "
        "(BENCHMARKS §1).",
        default=1.0,
    )
    accept_rms: float | None = help_field(
        "targeted ladder and rounds: the rows are accepted (no lighter weight, no further round) once their "
        "rms distance to their targets is at most this (logit units). Default a quarter of reach_tol.",
        default=None,
    )
    reach_tol: float = help_field(
        "targeted: the self-check fails (code targets_not_reached) when the rows end farther than this.", default=1.0
    )
    seed: int | None = help_field(
        "matched/targeted: seed of the row sampling; default the recipe's seed.", default=None
    )

    def check(self) -> list[str]:
        problems = []
        if self.step_size is not None and not self.step_size > 0:
            problems.append("step_size: must be positive")
        if self.steps is not None and self.steps < 1:
            problems.append("steps: must be at least 1")
        if self.correction is not None and not self.correction >= 0:
            problems.append("correction: must be zero or positive")
        for name in ("forget_batch", "warmup", "retarget_every", "patience"):
            if getattr(self, name) < 1:
                problems.append(f"{name}: must be at least 1")
        if self.retain_ce is not None and not self.retain_ce >= 0:
            problems.append("retain_ce: must be zero or positive")
        if self.retain_batch is not None and self.retain_batch < 1:
            problems.append("retain_batch: must be at least 1")
        if not self.band >= 0 or not self.tol_scale > 0:
            problems.append("band must be zero or positive and tol_scale positive")
        if self.ladder is not None:
            try:
                weights = self.anchor_ladder() or []
            except ValueError:
                weights = []
            if not weights or not all(w >= 0 for w in weights):
                problems.append(
                    f"ladder: {self.ladder!r} must be anchor weights (zero or positive) separated by commas"
                )
            if self.correction is not None:
                problems.append(
                    "ladder and correction: give one (a ladder tries its own weights; correction is one weight)"
                )
        if self.accept_rms is not None and not 0 < self.accept_rms <= self.reach_tol:
            problems.append("accept_rms: must be positive and at most reach_tol (an accepted run must pass the check)")
        if not 0 <= self.midcourse < 1:
            problems.append("midcourse: must be in [0, 1) (a fraction of a run's steps; 0 turns it off)")
        if not 0 < self.target_scale <= 4:
            problems.append("target_scale: must be in (0, 4]")
        if self.rounds < 0:
            problems.append("rounds: must be zero or positive")
        if not self.reach_tol > 0:
            problems.append("reach_tol: must be positive")
        if not 0 < self.target_level < 1:
            problems.append("target_level: must be in (0, 1)")
        return problems

    def acceptance(self) -> float:
        """The targeted rule's acceptance: ``accept_rms``, else a quarter of ``reach_tol``."""
        return self.accept_rms if self.accept_rms is not None else 0.25 * self.reach_tol

    def anchor_ladder(self) -> list[float] | None:
        """The targeted rule's anchor weights to try in turn: ``ladder`` as given, else none when
        ``correction`` is given (that weight, with its rounds), else :data:`DEFAULT_LADDER`."""
        if self.ladder is None and self.correction is not None:
            return None
        return [float(w) for w in (DEFAULT_LADDER if self.ladder is None else self.ladder).split(",")]


@dataclass(frozen=True)
class FinetuneOptions(Checked):
    """Options of fine-tuning."""

    epochs: int = help_field("Epochs on the retained rows.", default=2)
    lr: float | None = help_field("Learning rate; default the checkpoint's recipe.", default=None)

    def check(self) -> list[str]:
        problems = ["epochs: must be at least 1"] if self.epochs < 1 else []
        return problems + _check_lr(self.lr)


@dataclass(frozen=True)
class AscentOptions(Checked):
    """Options of gradient ascent and NegGrad+."""

    epochs: int = help_field("Passes over the forget rows.", default=1)
    lr: float | None = help_field("Learning rate; default the checkpoint's recipe.", default=None)
    batch_size: int = help_field("Forget rows per step (NegGrad+ draws as many retain rows).", default=32)
    retain_weight: float = help_field("NegGrad+: weight β of the retain loss; the forget loss gets 1 − β.", default=0.5)

    def check(self) -> list[str]:
        problems = []
        if self.epochs < 1:
            problems.append("epochs: must be at least 1")
        if self.batch_size < 1:
            problems.append("batch_size: must be at least 1")
        if not 0 <= self.retain_weight <= 1:
            problems.append("retain_weight: must be in [0, 1]")
        return problems + _check_lr(self.lr)


@dataclass(frozen=True)
class FisherOptions(Checked):
    """Options of Fisher forgetting."""

    alpha: float = help_field("Noise scale λ: variance = λ / Fisher.", default=1e-8)
    max_variance: float = help_field("Cap on each parameter's noise variance.", default=1e-4)
    fisher_rows: int = help_field("Retained rows the Fisher is averaged over (a seeded sample; 0 = all).", default=2048)
    seed: int = help_field("Seed of the noise.", default=0)

    def check(self) -> list[str]:
        problems = []
        if self.alpha <= 0 or self.max_variance <= 0:
            problems.append("alpha and max_variance must be positive")
        if self.fisher_rows < 0:
            problems.append("fisher_rows: must be zero or positive")
        return problems


@dataclass(frozen=True)
class InfluenceOptions(Checked):
    """Options of influence-function unlearning."""

    solver: Literal["exact", "cg", "lissa"] = help_field("exact, cg or lissa.", default="cg")
    newton: Literal["removal", "retain"] = help_field(
        "removal: the textbook step (1/n)·H⁻¹·Σ_f ∇ℓ with H over all n training rows; retain: a full Newton "
        "step −H_r⁻¹·∇L_r on the retained objective (also corrects for the L2 term's changed weight).",
        default="removal",
    )
    damping: float = help_field("Added to the Hessian's diagonal (keeps it positive definite).", default=0.01)
    iterations: int = help_field("cg: maximum iterations; lissa: recursion depth.", default=100)
    tolerance: float = help_field("cg: stop when the residual norm falls below this fraction of ‖b‖.", default=1e-5)
    hessian_rows: int = help_field("Rows the Hessian is averaged over (a seeded sample; 0 = all).", default=2048)
    lissa_scale: float = help_field("lissa: scale; must exceed the Hessian's largest eigenvalue.", default=10.0)
    lissa_batch: int = help_field("lissa: rows per recursion step (0 = all hessian rows).", default=256)
    lissa_tolerance: float = help_field(
        "lissa: stop once the relative residual ‖H·x − b‖/‖b‖ (checked every 25 steps) is at most this.",
        default=0.05,
    )
    max_parameters: int = help_field("exact: refuse models with more parameters than this.", default=5000)

    def check(self) -> list[str]:
        problems = []
        if self.damping < 0:
            problems.append("damping: must be zero or positive")
        if self.iterations < 1:
            problems.append("iterations: must be at least 1")
        if self.lissa_scale <= 0:
            problems.append("lissa_scale: must be positive")
        if self.hessian_rows < 0 or self.lissa_batch < 0:
            problems.append("hessian_rows and lissa_batch must be zero or positive")
        return problems


@dataclass(frozen=True)
class RetrainOptions:
    """Options of retraining."""

    seed: int | None = help_field("Seed; default the checkpoint's own.", default=None)


@dataclass(frozen=True)
class NoOptions:
    """A method that takes no options."""
