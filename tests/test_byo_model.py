"""README's "Bring your own model", run as written: its files written from the README's code
blocks, its shell block run line by line in an empty folder, as a user would paste them.

Then what the trust rule promises: the checkpoint reaches someone who never named the code (an
empty trust file) and is refused; editing the code refuses it too, until the user consents again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("## Bring your own model")
    return text[start : text.index("\n## ", start + 1)]


def blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)


def run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", line], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_bring_your_own_model_runs_as_written(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "IAU_TRUST_FILE": str(tmp_path / "trust" / "trusted-code"),
        "OMP_NUM_THREADS": "1",
    }
    work = tmp_path / "project"
    work.mkdir()
    shell = []
    for language, body in blocks(section()):
        first = body.splitlines()[0]
        if language in ("python", "yaml") and first.startswith("# ") and "." in first:
            (work / first[2:].strip()).write_text(body)
        elif language == "bash":
            shell += [line for line in body.splitlines() if line.strip()]
    assert {p.name for p in work.iterdir()} == {"make_table.py", "mymodels.py", "train_mine.py", "customers.yaml"}
    assert len(shell) == 6
    for line in shell:
        done = run(line, work, env)
        if line.startswith("iau audit"):
            assert done.returncode == 0, (line, done.stdout[-3000:], done.stderr)
        else:
            assert done.returncode == 0, (line, done.stderr)
    audit = json.loads((work / "audit.json").read_text())
    assert audit["verdict"] == "pass"
    assert {c["id"]: c["status"] for c in audit["checks"]}["membership_auc"] == "pass"
    original_distance = {c["id"]: c for c in audit["checks"]}["membership_auc"]["noop_distance"]
    assert original_distance > 0.1  # the table is one where keeping the rows shows

    # Someone else's machine: nobody there named mymodels, so the checkpoint's code is refused.
    elsewhere = {**env, "IAU_TRUST_FILE": str(tmp_path / "elsewhere" / "trusted-code")}
    refused = run("iau audit v1.safetensors --forget forget.txt", work, elsewhere)
    assert refused.returncode == 2, refused.stderr
    assert "--trust-checkpoint-code" in refused.stderr and "mymodels:CustomerNet" in refused.stderr
    assert "Traceback" not in refused.stderr

    # The trusted bytes copied into another folder, and a checkpoint pointing there: not trusted.
    import shutil

    from safetensors import safe_open
    from safetensors.torch import save_file

    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(work / "mymodels.py", copy / "mymodels.py")
    with safe_open(str(work / "v1.safetensors"), "pt") as handle:
        metadata, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    model_meta = json.loads(metadata["iau.model"])
    for folder in (str(copy), "", "."):
        model_meta["code"]["folder"] = folder
        save_file(tensors, str(work / "moved.safetensors"), {**metadata, "iau.model": json.dumps(model_meta)})
        moved = run(
            "iau lineage moved.safetensors >/dev/null && iau audit moved.safetensors --forget forget.txt", work, env
        )
        assert moved.returncode == 2 and "--trust-checkpoint-code" in moved.stderr, (folder, moved.stderr)

    # Edited code is not the code that was trusted.
    (work / "mymodels.py").write_text((work / "mymodels.py").read_text() + "\n# edited\n")
    edited = run("iau audit v1.safetensors --forget forget.txt", work, env)
    assert edited.returncode == 2, edited.stderr
    assert "--trust-checkpoint-code" in edited.stderr
    again = run("iau audit v1.safetensors --forget forget.txt --trust-checkpoint-code --json again.json", work, env)
    assert again.returncode in (0, 1), again.stderr  # consented again: it runs (whatever its verdict)
    assert json.loads((work / "again.json").read_text())["verdict"] in ("pass", "fail", "inconclusive")
