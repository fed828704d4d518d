"""The package is consistent: package.xml and setup.py agree, entry points work, lint is clean."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO_ROOT


def _setup_kwargs() -> dict:
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    call = next(
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"
    )  # fmt: skip
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords
            if kw.arg in ("name", "version", "entry_points")}


def test_package_xml_and_setup_py_agree():
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    kwargs = _setup_kwargs()
    assert root.findtext("name") == kwargs["name"] == "hand_pose_ros"
    assert root.findtext("version") == kwargs["version"]
    from hand_pose_ros import __version__

    assert __version__ == kwargs["version"]


def test_required_layout_exists():
    for name in ("hand_pose_ros", "hand_ik", "launch", "config", "msg", "urdf", "test",
                 "package.xml", "setup.py", "CMakeLists.txt", "README.md", ".ci/run"):
        assert (REPO_ROOT / name).exists(), name


@pytest.mark.parametrize(
    "script", _setup_kwargs()["entry_points"]["console_scripts"], ids=lambda s: s.split("=")[0]
)
def test_console_script_help(script):
    name, target = (part.strip() for part in script.split("="))
    exe = shutil.which(name, path=str(REPO_ROOT / ".venv" / "bin"))
    assert exe, f"console script {name} not installed: run scripts/setup.sh"
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    module, func = target.split(":")
    assert callable(getattr(__import__(module, fromlist=[func]), func))


def test_every_ros_executable_is_installed_by_cmake():
    cmake = (REPO_ROOT / "CMakeLists.txt").read_text()
    scripts = sorted(p.name for p in (REPO_ROOT / "scripts" / "ros").iterdir())
    for name in scripts:
        assert f"scripts/ros/{name}" in cmake, f"{name} not installed by CMakeLists.txt"
        assert (REPO_ROOT / ".venv" / "lib" / "hand_pose_ros" / name).exists(), name
    # Every message in msg/ is generated.
    for msg in (REPO_ROOT / "msg").glob("*.msg"):
        assert f'"msg/{msg.name}"' in cmake
        mod = __import__("hand_pose_ros.msg", fromlist=[msg.stem])
        assert hasattr(mod, msg.stem)


def test_package_xml_declares_what_the_code_imports():
    xml = (REPO_ROOT / "package.xml").read_text()
    deps = set(re.findall(r"<(?:exec_|build_|buildtool_|test_)?depend>([^<]+)<", xml))
    for needed in ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "visualization_msgs",
                   "diagnostic_msgs", "launch_ros", "rosidl_default_generators",
                   "rosidl_default_runtime", "python3-numpy", "python3-scipy"):
        assert needed in deps, needed


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(REPO_ROOT)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_installed_executables_run_with_the_venv_interpreter(tmp_path):
    """`#!` of every installed executable names this venv's Python (not /usr/bin/env python3),
    so `ros2 run` / launch work whatever comes first on PATH."""
    lib = REPO_ROOT / ".venv" / "lib" / "hand_pose_ros"
    venv_bin = (REPO_ROOT / ".venv" / "bin").resolve()
    scripts = sorted(p.name for p in (REPO_ROOT / "scripts" / "ros").iterdir())
    console = [s.split("=")[0].strip() for s in _setup_kwargs()["entry_points"]["console_scripts"]]
    for path in [*(lib / n for n in scripts), *(REPO_ROOT / ".venv" / "bin" / n for n in console)]:
        shebang = path.read_text().splitlines()[0]
        assert shebang.startswith("#!/"), (path, shebang)
        interpreter = Path(shebang[2:].split()[0])
        assert interpreter.parent.resolve() == venv_bin, (path, shebang)
    # With a PATH that has no venv (and no python3 at all), the executable still runs.
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run([str(lib / "hand-teleop"), "--help"], capture_output=True, text=True,
                            timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
