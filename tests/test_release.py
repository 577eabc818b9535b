"""The release: what ``python -m build`` makes installs and works outside the checkout.

Why: the suite imports the package from ``src/`` (an editable install), which hides what a
user of the published files would meet: a module left out of the wheel, ``py.typed``
missing, metadata that the package index refuses, an extra that names a development tool.
So one test builds the sdist and the wheel, checks them with ``twine check`` (what the
package index checks), installs the wheel with its extras into a fresh virtual environment,
and imports the public API there. It needs the package registry (the build backend and the
dependencies), as ``make test`` itself does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

#: Run in the fresh environment: every public module's ``__all__`` resolves, from the
#: installed files (never from the checkout), with the version the metadata declares. The
#: environment has the ``client`` and ``httpx`` extras only, so an integration whose library
#: is not installed must fail to import naming that library, and nothing else.
IMPORT_EVERYTHING = """
import importlib, json, pkgutil
import flask_batch
found, unavailable = {}, {}
for info in pkgutil.walk_packages(flask_batch.__path__, "flask_batch."):
    if any(part.startswith("_") for part in info.name.split(".")):
        continue
    try:
        module = importlib.import_module(info.name)
    except ModuleNotFoundError as error:
        unavailable[info.name] = error.name
        continue
    found[info.name] = [name for name in module.__all__ if not hasattr(module, name)]
print(json.dumps({
    "file": flask_batch.__file__,
    "version": flask_batch.__version__,
    "missing": {name: gone for name, gone in found.items() if gone},
    "modules": sorted(found),
    "unavailable": unavailable,
    "exports": sorted(flask_batch.__all__),
}))
"""

#: The integrations whose library the ``client,httpx`` environment lacks, and that library.
NEEDS_AN_EXTRA = {
    "flask_batch.integrations.django": "django",
    "flask_batch.integrations.flask_sqlalchemy": "flask_sqlalchemy",
    "flask_batch.integrations.sqlalchemy": "sqlalchemy",
    "flask_batch.integrations.sqlalchemy_asyncio": "sqlalchemy",
}


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Without isolation: the build backend is the dev group's setuptools (what
    # [build-system] requires), so the test does not download it into a new environment.
    run(
        sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", out, ROOT
    )
    return out


def only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


def test_twine_accepts_the_sdist_and_the_wheel(dist: Path) -> None:
    wheel, sdist = only(dist, "*.whl"), only(dist, "*.tar.gz")
    output = run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    assert output.count("PASSED") == 2, output


def test_the_wheel_carries_the_typed_package_and_the_license(dist: Path) -> None:
    names = zipfile.ZipFile(only(dist, "*.whl")).namelist()
    assert "flask_batch/py.typed" in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    sources = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src").rglob("*.py")}
    assert sources <= set(names), sorted(sources - set(names))


def test_the_sdist_carries_the_changelog_and_the_license(dist: Path) -> None:
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"CHANGELOG.md", "LICENSE", "README.md", "pyproject.toml"} <= names


def test_no_published_extra_names_a_development_tool() -> None:
    extras = PROJECT["optional-dependencies"]
    assert not {"dev", "bench", "load", "fuzz"} & set(extras)
    published = " ".join(req for reqs in extras.values() for req in reqs)
    for tool in ("pytest", "mypy", "ruff", "hypothesis", "gunicorn", "atheris", "twine"):
        assert tool not in published


def test_the_metadata_says_where_the_project_lives() -> None:
    assert {"Homepage", "Source", "Changelog", "Issues"} <= set(PROJECT["urls"])
    assert PROJECT["authors"]
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert "LICENSE" in PROJECT["license-files"]


def test_the_wheel_installs_into_a_fresh_environment_and_imports(
    dist: Path, tmp_path: Path
) -> None:
    # No pip of its own (ensurepip takes seconds): this environment's pip installs into it.
    venv.create(tmp_path / "env", with_pip=False)
    python = tmp_path / "env" / "bin" / "python"
    wheel = only(dist, "*.whl")
    install = (sys.executable, "-m", "pip", "--python", python, "install", "--quiet")
    run(*install, f"{wheel}[client,httpx]", cwd=tmp_path)
    report = json.loads(run(python, "-c", IMPORT_EVERYTHING, cwd=tmp_path))
    assert Path(report["file"]).is_relative_to(tmp_path / "env"), report["file"]
    assert report["version"] == PROJECT["version"]
    assert report["missing"] == {}
    assert report["unavailable"] == NEEDS_AN_EXTRA
    assert {"flask_batch.asgi", "flask_batch.wsgi", "flask_batch.client.httpx"} <= set(
        report["modules"]
    )
    assert {"add_batch_route", "Batch"} <= set(report["exports"])


#: The README is also the package index's project page, where a relative link or image
#: resolves against the index, not the repository: every link into the repository is
#: absolute, on the default branch (``HEAD``), and must name a file that exists.
SOURCE = PROJECT["urls"]["Source"]
REPOSITORY_LINKS = (
    f"{SOURCE}/blob/HEAD/",
    SOURCE.replace("github.com", "raw.githubusercontent.com") + "/HEAD/",
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub and the package index give the headings: lower case, no punctuation."""
    anchors: set[str] = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_the_readme_links_work_on_the_package_index_too() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = LINK.findall(readme)
    assert targets
    anchors = heading_anchors(readme)
    for target in targets:
        if target.startswith("#"):
            assert target[1:] in anchors, f"no heading for {target}"
        elif target.startswith(REPOSITORY_LINKS):
            path = target.removeprefix(REPOSITORY_LINKS[0]).removeprefix(REPOSITORY_LINKS[1])
            assert (ROOT / path.split("#")[0]).is_file(), f"{target} names no file"
        else:
            assert target.startswith("https://"), f"relative link {target}"
