import dataclasses
import json
from pathlib import Path

import pytest

from .helpers import run_cli


def test_demo_tells_both_stories_and_reuses_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import iau_cli.recipes.demo

    # The demo's stories on shorter recipes, so the test stays quick.
    from iau_cli.config import preset

    def short(name: str):  # noqa: ANN202
        full = preset(name)
        return dataclasses.replace(full, train=dataclasses.replace(full.train, epochs=3))

    monkeypatch.setattr(iau_cli.recipes.demo, "preset", short)
    workdir = tmp_path / "iau-demo"
    first = run_cli("demo", "--workdir", workdir, "--json", tmp_path / "demo.json", "--report", tmp_path / "demo.md")
    result = json.loads((tmp_path / "demo.json").read_text())
    # The exit code says whether both audits passed (3-epoch models need not).
    verdicts = [s["verdict"] for s in result["stories"]]
    assert result["passed"] == all(v == "PASS" for v in verdicts)
    assert first.exit_code == (0 if result["passed"] else 1), first.stderr
    assert [s["name"] for s in result["stories"]] == ["erasure", "cleanup"]
    for story in result["stories"]:
        assert [r["model"] for r in story["rows"]] == ["original", "unlearned (iau)", "retrained"]
        assert any(c.startswith("iau unlearn") and "--method retrain" in c for c in story["commands"])
        assert set(story["seconds"]) == {"train", "unlearn", "retrain"}
    cleanup = result["stories"][1]["rows"]
    assert cleanup[0]["forget_accuracy"] < 0.5  # replaced labels: the briefly trained original disagrees
    assert any("--purpose cleanup" in c for c in result["stories"][1]["commands"])
    assert (workdir / "erasure" / "forget.txt").read_text().count("\n") == 1 + round(0.05 * 6000)
    assert "iau demo" in (tmp_path / "demo.md").read_text()
    assert result["audit"]["checks"]  # the demo ends with the audit of its unlearned model
    second = run_cli("demo", "--workdir", workdir, "--json", "-", "-q")
    assert second.exit_code == first.exit_code
    again = json.loads(second.stdout)
    assert len(again["reused"]) == 6 and all(not s["seconds"] for s in again["stories"])
    assert again["stories"][0]["rows"] == result["stories"][0]["rows"]
