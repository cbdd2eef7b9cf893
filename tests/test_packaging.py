"""The package as someone installs it: `python -m build` makes a clean sdist and a wheel, the
wheel installs into a fresh virtual environment, and `roombot --help` runs from there. The
version has one source (`bot.__version__`), and the changelog has a section for it.

The build and the install download nothing: the build runs without isolation, on the
setuptools the test extra installs, and the fresh environment gets only the wheel (`--no-deps`);
it sees the dependencies through a `.pth` line naming this environment's site-packages, after
its own, so the roombot it imports is the wheel's. `pip check` then proves the wheel's declared
dependencies are satisfied by what it sees.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import bot
from bot.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
VERSION = bot.__version__
#: What is never copied into the build's source tree (a developer's checkout has all of these).
_NOT_SOURCE = (
    ".git",
    ".env",
    ".env.*",
    "*venv*",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    "site",
    ".*_cache",
    ".hypothesis",
    "*.sqlite3*",
    "out",
)
_PACKAGES = ("bot", "handlers")


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> str:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _modules(root: Path) -> set[str]:
    """The source files of roombot's packages under `root`, as paths relative to it."""
    return {
        path.relative_to(root).as_posix()
        for package in _PACKAGES
        for path in (root / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_roombot_version_prints_the_one_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"roombot {VERSION}"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]  # no second copy to forget
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bot.__version__"}


def test_the_changelog_has_an_unreleased_section_and_one_for_this_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## [Unreleased]"
    assert any(line.startswith(f"## [{VERSION}]") for line in headings), headings


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) built from a copy of this checkout, the wheel from the sdist."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    out = work / "dist"
    # Without --sdist/--wheel, build makes the sdist, then the wheel from the unpacked sdist:
    # a file the sdist lacks breaks the wheel.
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), "."], source)
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_the_sdist_holds_the_source_and_nothing_else(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    assert sdist.name == f"roombot-{VERSION}.tar.gz"
    top = f"roombot-{VERSION}/"
    with tarfile.open(sdist) as archive:
        names = {m.name.removeprefix(top) for m in archive.getmembers() if m.isfile()}
    metadata = {n for n in names if n.startswith("roombot.egg-info/")}
    modules = {n for n in names if n.split("/")[0] in _PACKAGES}
    assert modules == _modules(REPO)
    assert names - metadata - modules == {
        "PKG-INFO",
        "setup.cfg",
        "pyproject.toml",
        "MANIFEST.in",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
    }


@pytest.mark.slow
def test_the_wheel_holds_the_packages_and_true_metadata(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    assert wheel.name == f"roombot-{VERSION}-py3-none-any.whl"
    info = f"roombot-{VERSION}.dist-info/"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.parser.Parser().parsestr(archive.read(info + "METADATA").decode())
        entry_points = archive.read(info + "entry_points.txt").decode()
    assert {n for n in names if not n.startswith(info)} == _modules(REPO)
    assert info + "licenses/LICENSE" in names
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "LicenseRef-Proprietary"
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier") or []
    assert "Private :: Do Not Upload" in classifiers  # an index refuses the upload
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert metadata.get_all("Project-URL")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    runtime = {
        str(Requirement(r)) for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r
    }
    assert runtime == {str(Requirement(r)) for r in pyproject["project"]["dependencies"]}
    assert "roombot = bot.cli:main" in entry_points


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs(
    dists: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, wheel = dists
    monkeypatch.setenv("COLUMNS", "100")  # the same help layout here and in the subprocess
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    _run([*pip, "install", "--quiet", "--no-index", "--no-deps", str(wheel)], tmp_path)
    where_to = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(_run([str(python), "-c", where_to], tmp_path).strip())
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (purelib / "zz_test_dependencies.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")

    _run([*pip, "check"], tmp_path)
    imported = "import bot, handlers; print(bot.__file__, handlers.__file__)"
    where = _run([str(python), "-c", imported], tmp_path)
    assert all(Path(path).is_relative_to(purelib) for path in where.split()), where

    roombot = str(env / "bin" / "roombot")
    assert _run([roombot, "--help"], tmp_path) == build_parser().format_help()
    assert _run([roombot, "--version"], tmp_path).strip() == f"roombot {VERSION}"
    # Every module of the source tree imports from the installed wheel (a subpackage the wheel
    # left out fails here, not in production); `__main__` would run the command line.
    names = sorted(
        m.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for m in _modules(REPO)
        if not m.endswith("__main__.py")
    )
    script = f"import importlib\nfor name in {names!r}:\n    importlib.import_module(name)\n"
    _run([str(python), "-c", script], tmp_path)
