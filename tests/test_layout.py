"""The package's layers, as the README and DESIGN.md promise: core <- data <- heads <- cli, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "winner"
LAYERS = {"core": 0, "data": 1, "heads": 2, "cli": 3, "scale": 3}  # scale runs pipelines, beside cli


def _imports(path: Path) -> set[str]:
    """Every winner module a file imports, at the top or inside a function, plus module names in strings
    (importlib.import_module("winner.x") counts too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("winner"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("winner"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("winner."):
            found.add(node.value)
    return found


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py", "errors.py"))
    assert loose == [], f"modules outside core/ data/ heads/ cli/: {loose}"


def test_no_layer_imports_a_layer_above_it():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        here = path.relative_to(PACKAGE).parts[0]
        if here not in LAYERS:
            continue
        for name in _imports(path):
            there = _layer(name)
            if there is not None and LAYERS[there] > LAYERS[here]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == [], "\n".join(sorted(wrong))


def test_no_import_cycles_between_modules():
    modules = {".".join(("winner", *p.relative_to(PACKAGE).with_suffix("").parts)): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {n for n in _imports(p) if n in modules and n != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*stack, m, n]
            if n not in state and (cycle := visit(n, [*stack, m])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m, [])
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_kernel_takes_more_than_fifteen_arguments():
    """Kernels take their arrays grouped (layers.Params, layers.Scratch, updates.Hyper, ...), not one by one:
    a long list of positional arguments is where a swapped pair hides."""
    import importlib
    import inspect

    from numba.core.dispatcher import Dispatcher

    kernels, wide = 0, []
    for path in sorted((PACKAGE / "core").glob("*.py")) + sorted((PACKAGE / "heads").glob("*.py")):
        module = importlib.import_module(".".join(("winner", *path.relative_to(PACKAGE).with_suffix("").parts)))
        for name, obj in vars(module).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == module.__name__:
                kernels += 1
                n = len(inspect.signature(obj.py_func).parameters)
                if n > 15:
                    wide.append(f"{module.__name__}.{name}: {n} parameters")
    assert kernels > 50  # the scan found the kernels
    assert wide == [], "\n".join(wide)


def test_no_module_over_six_hundred_lines():
    long = [f"{p.relative_to(PACKAGE)}: {n}" for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600]
    assert long == [], "\n".join(long)


def test_no_function_over_eighty_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert long == [], "\n".join(long)


# Imported inside functions only because importing them is slow (numba compiles or loads kernels, the others
# load large libraries), so that `winner --help` and commands that never need them stay fast.
HEAVY = {"numba", "gensim", "datasets", "matplotlib", "ray", "torch", "sklearn", "seqeval", "pyarrow"}


def _top_level_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _heavy_modules() -> set[str]:
    """HEAVY plus every winner module whose import (transitively) imports one of them."""
    modules = {".".join(("winner", *p.relative_to(PACKAGE).with_suffix("").parts)): _top_level_imports(p)
               for p in PACKAGE.rglob("*.py")}
    heavy = {m for m, deps in modules.items() if any(d.split(".")[0] in HEAVY for d in deps)}
    while True:
        more = {m for m, deps in modules.items() if m not in heavy and deps & heavy}
        if not more:
            return heavy
        heavy |= more


def test_function_local_imports_are_only_of_heavy_modules():
    heavy, light = _heavy_modules(), []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if id(node) in top or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom):
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                names = [a.name for a in node.names]
            if not any(name.split(".")[0] in HEAVY or name in heavy for name in names):
                for name in names[:1]:
                    light.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name} inside a function")
    assert light == [], "\n".join(light)


def test_kernels_that_reassociate_are_called_by_no_other_kernel():
    """fastmath's "reassoc" only on entry kernels (FAST_ENTRY): numba links a copy of a callee into each caller
    and optimises it again there, and a reassociating copy can then sum in another order than the callee's
    own, so the bits would depend on what numba's cache held (see winner.core.fastmath.FAST)."""
    entry, called = set(), set()
    for path in sorted((PACKAGE / "core").glob("*.py")) + sorted((PACKAGE / "heads").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            decorators = " ".join(ast.unparse(d) for d in node.decorator_list)
            if "njit" not in decorators and "overload" not in decorators:
                continue
            if "FAST_ENTRY" in decorators:
                entry.add(node.name)
            called.update(c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name))
    assert {"lookup_logits", "log_softmax_rows", "train_batches"} <= entry
    assert entry & called == set()


def _decorator_name(decorator: ast.expr) -> str:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")


def test_every_kernel_states_the_flags_numba_would_otherwise_inherit():
    """A kernel that leaves fastmath or error_model unset (an overload: its jit_options) takes the flags of
    whichever kernel first called it in the process, and numba's cache keeps it under its signature alone, so
    the same seed gave other bits over a cache another command had filled (see winner.core.fastmath.KERNEL_FLAGS).
    Functions inlined into their callers (inline="always") are compiled under each caller's flags instead."""
    missing, kernels = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                name = _decorator_name(decorator)
                if name not in ("njit", "jit", "overload"):
                    continue
                options = {k.arg: k.value for k in getattr(decorator, "keywords", [])}
                inline = options.get("inline")
                if isinstance(inline, ast.Constant) and inline.value == "always":
                    continue
                kernels += 1
                needed = ("jit_options",) if name == "overload" else ("fastmath", "error_model")
                if any(option not in options for option in needed):
                    missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert kernels > 80
    assert missing == [], "kernels leaving their flags to numba: " + ", ".join(missing)
