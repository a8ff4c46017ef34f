"""The documentation builds, its links resolve, and the README stays a landing page.

``mkdocs build --strict`` (``mkdocs.yml`` turns broken links and anchors, and pages left
out of the navigation, into warnings, which ``--strict`` fails on) covers docs/; the
README is not part of the site, so its links are checked here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
FIRST_BLOCK = re.compile(r"```\w*\n(?P<code>.*?)```", re.S)


def test_the_docs_build_with_mkdocs_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()


def test_every_docs_page_is_in_the_site_navigation():
    # omitted_files would only warn for pages mkdocs finds; this names them.
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    listed = set(re.findall(r"[\w-]+\.md", str(nav)))
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert pages == listed, f"pages not in mkdocs.yml's nav: {sorted(pages - listed)}"


def test_the_readme_opens_with_the_two_commands_and_stays_short():
    text = README.read_text(encoding="utf-8")
    # ../shared/tools/fresh-clone-check and .ci/run read these two lines.
    first = FIRST_BLOCK.search(text)["code"].splitlines()
    assert first[0] == "pip install -e . && samplerlab run experiments/quickstart.yaml"
    assert first[1].startswith("pip install -e \".[test") and first[1].endswith(
        "&& python -m pytest")
    assert len(text.splitlines()) <= 200


def _slug(heading: str) -> str:
    """A heading's anchor, as GitHub and MkDocs (Python-Markdown's toc) make it."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s]+", "-", text)


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+\s+(.+)$", text, flags=re.M)}


def test_the_readme_links_resolve():
    broken = []
    for match in LINK.finditer(README.read_text(encoding="utf-8")):
        target = match["target"]
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (REPO / path) if path else README
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    assert not broken, f"README.md links to missing files or headings: {broken}"


def test_the_readme_spec_is_valid():
    from samplerlab.spec import load_spec

    spec_text = re.search(r"```yaml\n(?P<code>.*?)```", README.read_text(encoding="utf-8"),
                          re.S)["code"]
    loaded = load_spec(yaml.safe_load(spec_text))
    assert len(loaded.cells) == 5  # greedy, two top_k cells, chain, contrastive
