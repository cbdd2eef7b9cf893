"""The architecture's hard rules, enforced: the core (`bot/`) imports neither Slack nor the Slack
adapter (`handlers/`), only the composition root (`bot.cli`) may; and inside the core each
layer imports only the layers below it (DESIGN §4).

The contracts live in pyproject.toml (`[tool.importlinter]`) and `scripts/check` runs them;
these tests prove they hold on this tree and that each bites when broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: Each test runs lint-imports as a real process.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(lint), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _copy_of_the_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("bot", "handlers"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_core_imports_no_slack(tmp_path: Path) -> None:
    result = _lint_imports(_copy_of_the_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "forbidden"),
    [
        ("bot/models/rooms.py", "import slack_sdk", "slack_sdk"),
        ("bot/service.py", "from slack_bolt.async_app import AsyncApp", "slack_bolt"),
        ("bot/wording/results.py", "from handlers import blocks", "handlers"),
    ],
)
def test_the_contract_breaks_when_the_core_imports_slack(
    tmp_path: Path, module: str, line: str, forbidden: str
) -> None:
    tree = _copy_of_the_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = _lint_imports(tree)
    assert result.returncode != 0
    dotted = module.removesuffix(".py").replace("/", ".")
    assert f"bot is not allowed to import {forbidden}" in result.stdout
    assert f"{dotted} -> {forbidden}" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "imported"),
    [
        # the store reaching up into Room Engine's client (the old `audit` → `tencent` arrow)
        ("bot/audit/store.py", "from bot.tencent import client", "bot.tencent.client"),
        # a plain data type reaching up into the client (the old `outcomes` → `client` arrow)
        ("bot/models/rooms.py", "from bot.tencent import transport", "bot.tencent.transport"),
        # the request life reaching up into the service that drives it
        ("bot/requests/life.py", "from bot import service", "bot.service"),
        # a leaf reaching up into the store
        ("bot/config.py", "from bot.audit import store", "bot.audit.store"),
    ],
)
def test_the_layers_contract_breaks_when_a_layer_imports_one_above_it(
    tmp_path: Path, module: str, line: str, imported: str
) -> None:
    tree = _copy_of_the_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "the core is layered" in result.stdout
    assert "BROKEN" in result.stdout
    dotted = module.removesuffix(".py").replace("/", ".")
    assert f"{dotted} -> {imported}" in result.stdout


#: The most lines a module of the core or the Slack adapter may have (issue 22: "no grab-bags").
MAX_MODULE_LINES = 700


def test_no_module_of_the_core_or_the_adapter_is_a_grab_bag() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for package in ("bot", "handlers")
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}, f"modules over {MAX_MODULE_LINES} lines: {too_long}"
