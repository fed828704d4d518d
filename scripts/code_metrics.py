#!/usr/bin/env python3
"""Code metrics of a checkout, as one JSON object on stdout (issue 20: before/after numbers).

Usage::

    python scripts/code_metrics.py [ROOT] [--ros]

ROOT defaults to the current directory. Static analysis only (``ast``), standard library only.
``--ros`` additionally constructs each Node subclass under ``hand_pose_ros/nodes/`` with rclpy
(one subprocess per module, isolated DDS domain) and lists the parameters it declared; when a
constructor raises, the error is reported with the parameters declared before it
(``declared_before_error``, not in ``count``).

Definitions:
- lines: non-blank lines for ``lines_per_package``; physical lines for ``files_over_400_lines``;
  ``def`` line (decorators excluded) to ``end_lineno`` for ``functions_over_60_lines``.
- product packages: ``hand_pose_ros``, ``hand_ik``, ``launch``.
- import graph: nodes are first-party modules (``hand_pose_ros.*``, ``hand_ik.*``; a package is
  its ``__init__``). ``import a.b`` and ``from a import b`` point at ``a.b`` when it is a module,
  else at the longest prefix that is one. Parent packages that Python also runs are not edges.
  Imports under ``if TYPE_CHECKING:`` are skipped. A cycle is a strongly connected component of
  more than one module, or a module importing itself.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

FIRST_PARTY = ("hand_pose_ros", "hand_ik")
PRODUCT = ("hand_pose_ros", "hand_ik", "launch")
PACKAGES = ("hand_pose_ros", "hand_ik", "launch", "test", "scripts", "tools")
SKIP_DIRS = {"__pycache__", ".venv", "build", "install", "log", ".git"}
FILE_LIMIT = 400
FUNCTION_LIMIT = 60
# Parameters rclpy declares on every node, not the project's.
BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
BUILTIN_PREFIXES = ("qos_overrides.",)


def python_files(root: Path, top: str) -> list[Path]:
    """Every ``.py`` file under ``root/top``, sorted, skipping caches and build folders."""
    base = root / top
    if not base.is_dir():
        return []
    return sorted(
        p for p in base.rglob("*.py")
        if not SKIP_DIRS.intersection(p.relative_to(root).parts)
    )


def rel(root: Path, path: Path) -> str:
    """``path`` relative to ``root``, with forward slashes."""
    return path.relative_to(root).as_posix()


def module_name(root: Path, path: Path) -> str:
    """Dotted module name of a file (a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def parse(path: Path) -> ast.Module | None:
    """The file's syntax tree, or None when it does not parse."""
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError):
        return None


def is_type_checking(test: ast.expr) -> bool:
    """True for ``TYPE_CHECKING`` and ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class Walker(ast.NodeVisitor):
    """One pass over a module: functions (qualified name, span), imports (in a function or not),
    dataclasses, and calls of ``declare_parameter``/``add_argument``."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.function_depth = 0
        self.loop_depth = 0
        self.functions: list[tuple[str, int]] = []
        self.imports: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self.dataclasses: list[str] = []
        self.declare_calls = 0
        self.declare_calls_in_loops = 0
        self.cli_flags = 0

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        span = node.end_lineno - node.lineno + 1
        self.functions.append((".".join([*self.scope, node.name]), span))
        self.scope.append(node.name)
        self.function_depth += 1
        loops, self.loop_depth = self.loop_depth, 0
        self.generic_visit(node)
        self.loop_depth = loops
        self.function_depth -= 1
        self.scope.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for deco in node.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name == "dataclass":
                self.dataclasses.append(".".join([*self.scope, node.name]))
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def _loop(self, node: ast.AST) -> None:
        self.loop_depth += 1
        self.generic_visit(node)
        self.loop_depth -= 1

    visit_For = visit_AsyncFor = visit_While = _loop
    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _loop

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        self.imports.append((node, self.function_depth > 0))

    visit_Import = visit_ImportFrom = _import

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "declare_parameter":
            self.declare_calls += 1
            self.declare_calls_in_loops += self.loop_depth > 0
        elif name == "declare_parameters":
            # declare_parameters(namespace, [(name, value), ...]): count literal list entries.
            items = node.args[1] if len(node.args) > 1 else None
            count = len(items.elts) if isinstance(items, (ast.List, ast.Tuple)) else 1
            self.declare_calls += count
            self.declare_calls_in_loops += count if self.loop_depth > 0 else 0
        elif name == "add_argument" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) \
                    and first.value.startswith("-"):
                self.cli_flags += 1
        self.generic_visit(node)


def is_first_party(name: str | None) -> bool:
    """True for ``hand_pose_ros``/``hand_ik`` and their submodules."""
    return bool(name) and name.split(".")[0] in FIRST_PARTY


def resolve(modules: set[str], dotted: str) -> str | None:
    """``dotted`` if it is a known module, else its longest prefix that is; None if none."""
    parts = dotted.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def import_targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
                   modules: set[str]) -> tuple[list[str], bool]:
    """First-party modules one import statement points at, and whether it is first-party
    (absolute ``hand_pose_ros``/``hand_ik`` or relative)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if is_first_party(a.name)]
        return [t for n in names if (t := resolve(modules, n))], bool(names)
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        base = ".".join([*package, node.module] if node.module else package)
        first_party = True
    else:
        base = node.module or ""
        first_party = is_first_party(base)
    if not first_party:
        return [], False
    targets = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        target = submodule if submodule in modules else resolve(modules, base)
        if target:
            targets.append(target)
    return targets, True


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): components with >1 node, or a node with a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return sorted(found)


def static_metrics(root: Path) -> dict:
    """Every metric that reading the source gives."""
    lines_per_package: dict[str, int] = {}
    files_over: list[list] = []
    functions_over: list[list] = []
    imports_in_functions: Counter[str] = Counter()
    config_dataclasses: list[str] = []
    declare: Counter[str] = Counter()
    declare_in_loops: Counter[str] = Counter()
    cli_flags: Counter[str] = Counter()
    walked: dict[Path, tuple[str, bool, Walker]] = {}

    for top in PACKAGES:
        for path in python_files(root, top):
            text = path.read_text(encoding="utf-8", errors="replace")
            nonblank = sum(1 for line in text.splitlines() if line.strip())
            parts = path.relative_to(root).parts
            keys = [top]
            if len(parts) > 2:
                keys.append(f"{top}/{parts[1]}")
            elif top in FIRST_PARTY:
                keys.append(f"{top}/*.py")
            for key in keys:
                lines_per_package[key] = lines_per_package.get(key, 0) + nonblank
            if top not in PRODUCT:
                continue
            name = rel(root, path)
            physical = len(text.splitlines())
            if physical > FILE_LIMIT:
                files_over.append([name, physical])
            tree = parse(path)
            if tree is None:
                continue
            walker = Walker()
            walker.visit(tree)
            module = module_name(root, path)
            walked[path] = (module, path.name == "__init__.py", walker)
            functions_over += [[q, name, n] for q, n in walker.functions if n > FUNCTION_LIMIT]
            config_dataclasses += [f"{module}.{c}" for c in walker.dataclasses
                                   if c.endswith("Config")]
            declare[name] += walker.declare_calls
            declare_in_loops[name] += walker.declare_calls_in_loops
            cli_flags[name] += walker.cli_flags

    modules = {m for m, _, _ in walked.values() if is_first_party(m)}
    top_graph: dict[str, set[str]] = {m: set() for m in modules}
    all_graph: dict[str, set[str]] = {m: set() for m in modules}
    for path, (module, is_package, walker) in walked.items():
        for node, in_function in walker.imports:
            targets, first_party = import_targets(node, module, is_package, modules)
            if in_function and first_party:
                imports_in_functions[rel(root, path)] += 1
            if module not in modules:
                continue
            all_graph[module].update(targets)
            if not in_function:
                top_graph[module].update(targets)
    cycles_top = strongly_connected(top_graph)
    cycles_all = strongly_connected(all_graph)

    def nonzero(counter: Counter[str]) -> dict[str, int]:
        return {k: v for k, v in sorted(counter.items()) if v}

    return {
        "root": str(root),
        "lines_per_package": dict(sorted(lines_per_package.items())),
        "files_over_400_lines": sorted(files_over, key=lambda r: (-r[1], r[0])),
        "functions_over_60_lines": sorted(functions_over, key=lambda r: (-r[2], r[1], r[0])),
        "first_party_imports_in_functions": {
            "count": sum(imports_in_functions.values()),
            "per_file": nonzero(imports_in_functions),
        },
        "import_cycles": {
            "modules": len(modules),
            "top_level": {"count": len(cycles_top), "components": cycles_top},
            "all_imports": {"count": len(cycles_all), "components": cycles_all},
        },
        "config_dataclasses": {"count": len(config_dataclasses),
                               "names": sorted(config_dataclasses)},
        "ros_parameters": {
            "static_declare_calls": sum(declare.values()),
            "static_declare_calls_in_loops": sum(declare_in_loops.values()),
            "per_file": nonzero(declare),
            "note": "a call inside a loop declares several parameters; see --ros for the count",
        },
        "cli_flags": {"count": sum(cli_flags.values()), "per_file": nonzero(cli_flags)},
    }


# Run in a child interpreter per node module: import it, construct each Node subclass it
# defines, print the declared parameters as JSON. Errors are reported, not raised.
_NODE_PROBE = r"""
import importlib, inspect, json, sys
root, module_name = sys.argv[1], sys.argv[2]
builtin, prefixes = set(json.loads(sys.argv[3])), tuple(json.loads(sys.argv[4]))
out = {"module": module_name, "nodes": {}}
try:
    import rclpy
    from rclpy.node import Node
    module = importlib.import_module(module_name)
    out["file"] = module.__file__
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Node) and c is not Node and c.__module__ == module_name]
    created = []  # every Node initialised, so a constructor that fails can still be read
    base_init = Node.__init__
    def recording_init(self, *args, **kwargs):
        base_init(self, *args, **kwargs)
        created.append(self)
    Node.__init__ = recording_init
    rclpy.init()
    for cls in classes:
        created.clear()
        entry = out["nodes"][cls.__name__] = {}
        try:
            cls()
        except BaseException as exc:  # noqa: BLE001 - report every failure
            entry["error"] = f"{type(exc).__name__}: {exc}"
        if created:
            node = created[0]
            names = sorted(n for n in node._parameters
                           if n not in builtin and not n.startswith(prefixes))
            if "error" in entry:
                entry["declared_before_error"] = len(names)
            else:
                entry["count"] = len(names)
            entry["parameters"] = names
            try:  # the base class's: a half-built node may lack what its override frees
                Node.destroy_node(node)
            except BaseException:  # noqa: BLE001
                pass
    rclpy.try_shutdown()
except BaseException as exc:  # noqa: BLE001
    out["error"] = f"{type(exc).__name__}: {exc}"
print("CODE_METRICS_JSON " + json.dumps(out))
"""


def dynamic_ros_parameters(root: Path, timeout_s: float = 120.0) -> dict:
    """Parameters each node in ``hand_pose_ros/nodes/`` declares when constructed with rclpy."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(100, 200))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # The checkout under test first; drop other source checkouts (e.g. an editable install's
    # path) so its modules cannot stand in for ones this checkout lacks.
    paths = [str(root)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep)
        if p and Path(p).resolve() != root.resolve()
    ]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    prelude = (
        "import sys, pathlib; r = pathlib.Path(sys.argv[1]).resolve(); "
        "sys.path[:] = [p for p in sys.path if not p or pathlib.Path(p).resolve() == r "
        "or not (pathlib.Path(p, 'hand_pose_ros', 'nodes').is_dir() "
        "or pathlib.Path(p, 'hand_ik').is_dir())]; sys.path.insert(0, str(r))\n"
    )
    result: dict = {"ros_domain_id": int(env["ROS_DOMAIN_ID"]), "modules": {}}
    total = partial = failed = 0
    for path in python_files(root, "hand_pose_ros/nodes"):
        tree = parse(path)
        if tree is None or not any(
            isinstance(n, ast.ClassDef) and any(
                getattr(b, "id", getattr(b, "attr", "")) == "Node" for b in n.bases)
            for n in ast.walk(tree)
        ):
            continue
        module = module_name(root, path)
        cmd = [sys.executable, "-c", prelude + _NODE_PROBE, str(root), module,
               json.dumps(sorted(BUILTIN_PARAMETERS)), json.dumps(BUILTIN_PREFIXES)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=timeout_s, cwd=root)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CODE_METRICS_JSON ")]
            if lines:
                entry = json.loads(lines[-1].split(" ", 1)[1])
            else:
                entry = {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
        except subprocess.TimeoutExpired:
            entry = {"error": f"timed out after {timeout_s:g} s"}
        entry.pop("module", None)
        for node in entry.get("nodes", {}).values():
            total += node.get("count", 0)
            partial += node.get("declared_before_error", 0)
            failed += "error" in node
        result["modules"][module] = entry
    result["count"] = total
    result["declared_before_error"] = partial
    result["nodes_failed"] = failed
    return result


def main(argv: list[str] | None = None) -> int:
    """Print the metrics of ``root`` as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default=".", help="repository root (default: .)")
    parser.add_argument("--ros", action="store_true",
                        help="also construct each node with rclpy and count its parameters")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    metrics = static_metrics(root)
    if args.ros:
        metrics["ros_parameters"]["dynamic"] = dynamic_ros_parameters(root)
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
