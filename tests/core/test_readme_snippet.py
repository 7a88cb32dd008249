"""The README's fine-tuning snippet runs exactly as written and its model learns the task."""

import contextlib
import io
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_snippet(name: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- snippet:{name}.*?-->\s*```python\n(.*?)```\s*<!-- /snippet:{name} -->", text, re.S
    )
    assert match, f"snippet {name} not found in README.md"
    return match.group(1)


def test_classifier_snippet_runs_verbatim(tmp_path, monkeypatch):
    code = readme_snippet("classifier")
    assert len(code.strip().splitlines()) <= 10
    (tmp_path / "samples").mkdir()
    shutil.copy(ROOT / "samples" / "reviews.csv", tmp_path / "samples" / "reviews.csv")
    monkeypatch.chdir(tmp_path)
    stdout = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, "README.md", "exec"), namespace)
    predictions = namespace["clf"].predict(["The strap snapped on day one.", "Works great, arrived early."])
    assert predictions == ["negative", "positive"]
    assert (tmp_path / "runs" / "reviews" / "config.json").is_file()
    assert "['negative', 'positive']" in stdout.getvalue()
