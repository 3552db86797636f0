import json
from pathlib import Path

import pytest

from .conftest import digits_config
from .helpers import run_cli


def test_demo_tells_both_stories_and_reuses_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import iau_cli.demo

    # The demo's story on a shorter recipe, so the test stays quick.
    monkeypatch.setattr(iau_cli.demo, "default_run_config", lambda: digits_config(epochs=8, hidden=32, gr_alpha=0.005))
    workdir = tmp_path / "iau-demo"
    first = run_cli("demo", "--workdir", workdir, "--json", tmp_path / "demo.json", "--report", tmp_path / "demo.md")
    assert first.exit_code == 0, first.stderr
    result = json.loads((tmp_path / "demo.json").read_text())
    assert [s["name"] for s in result["stories"]] == ["erasure", "cleanup"]
    for story in result["stories"]:
        assert [r["model"] for r in story["rows"]] == ["original", "unlearned (iau)", "retrained"]
        assert any(c.startswith("iau unlearn") and "--method retrain" in c for c in story["commands"])
        assert set(story["seconds"]) == {"train", "unlearn", "retrain"}
    cleanup = result["stories"][1]["rows"]
    assert cleanup[0]["forget_accuracy"] < 0.5  # flipped labels: the original mostly disagrees with them
    assert (workdir / "erasure" / "forget.txt").read_text().count("\n") == 1 + round(0.05 * 1438)
    assert "iau demo" in (tmp_path / "demo.md").read_text()
    assert result["audit"]["checks"]  # the demo ends with the audit of its unlearned model
    second = run_cli("demo", "--workdir", workdir, "--json", "-", "-q")
    assert second.exit_code == 0
    again = json.loads(second.stdout)
    assert len(again["reused"]) == 6 and all(not s["seconds"] for s in again["stories"])
    assert again["stories"][0]["rows"] == result["stories"][0]["rows"]
