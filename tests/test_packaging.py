"""The set-up files agree with each other, and CI runs what the README tells users to run."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch", "pytorch-cpu": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_packages() -> set[str]:
    project = _pyproject()["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {_name(r) for r in reqs}


def _conda_packages(path: Path) -> set[str]:
    names = set()
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
        else:
            name = _name(dep.split("=")[0])
            names.add(CONDA_TO_PIP.get(name, name))
    return names - NOT_PACKAGES


def test_pyproject_and_conda_environments_name_the_same_packages():
    expected = _pyproject_packages()
    assert _conda_packages(ROOT / "environment.yml") == expected
    assert _conda_packages(ROOT / "binder" / "environment.yml") == expected


def test_root_environment_installs_the_package_and_binder_uses_cpu_pytorch():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip
    binder = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    names = {_name(d.split("=")[0]) for d in binder["dependencies"] if isinstance(d, str)}
    assert "pytorch-cpu" in names and "pytorch" not in names and "cpuonly" not in names
    assert binder["channels"] == ["conda-forge"]


def test_binder_postbuild_installs_the_package_and_stops_on_errors():
    post = (ROOT / "binder" / "postBuild").read_text().splitlines()
    assert post[0].startswith("#!")
    assert "set -e" in post
    assert any("pip install" in line and "-e ." in line for line in post)


def test_constraints_pin_every_dependency_and_the_required_torch():
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraint {line!r} is not an exact pin"
            pins[_name(name)] = version
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert _pyproject_packages() <= set(pins)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    ci = [line for line in ci_lines if line and not line.startswith("#")]
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    test_command = ci[-1].strip()
    assert test_command == "make test"
    assert any(test_command in block.splitlines() for block in commands), "README does not give CI's command"
    assert any("make notebooks" in block.splitlines() for block in commands)


def test_makefile_targets_set_up_before_running():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("notebooks", "test"):
        assert re.search(rf"^{target}: \$\(STAMP\)( browser)?$", makefile, flags=re.M), target
    browser = re.search(r"^test: \$\(STAMP\) browser$", makefile, flags=re.M)
    assert browser, "make test must set up the browser"
    assert "-c requirements/constraints.txt" in makefile


def test_license_file_matches_pyproject():
    assert _pyproject()["project"]["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_citation_cites_the_three_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    arxiv = {ident["value"] for ref in cff["references"] for ident in ref["identifiers"]}
    assert arxiv == {"arXiv:2311.15053", "arXiv:2408.01316", "arXiv:2204.04297"}
    assert all(ref["authors"] and ref["year"] for ref in cff["references"])
