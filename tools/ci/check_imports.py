"""Import-layering checks for the Ember monorepo.

Rules:
  1. core (packages/core/src/ember, minus library subpackages) never imports a
     library (ember.data, ember.train, ember.tune, ember.serve, ember.rllib,
     ember.autoscaler, or any other ember.<lib> shipped from packages/<lib>/);
  2. libraries never import ember._private (only the public core API);
  3. libraries never import each other;
  4. library packages do not ship src/ember/__init__.py (it would overwrite
     core's when both wheels are installed).

Two passes:
  * an AST scan of every source file. It works for library names that do not
    exist yet, so rule 1 already means something before any library lands, and
    it also sees `from ember import data`, relative imports and
    importlib.import_module("ember.data") string literals;
  * import-linter (lint-imports), which also follows indirect import chains.
    import-linter rejects contracts that name modules which do not exist, so
    its config is generated here from the packages that actually exist instead
    of living in a static .importlinter file.

Run from the repository root: `hatch run lint:imports` (or
`python tools/ci/check_imports.py [REPO_ROOT]`). Exit status 1 on any violation.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Library names reserved even before their package exists, so core cannot grow
# a dependency on them in the meantime.
KNOWN_LIBRARIES = {"data", "train", "tune", "serve", "rllib", "autoscaler"}


def module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, mod: str):
    """Yield (lineno, absolute module name) for each import in the file.

    For `from a import b` both `a` and `a.b` are yielded, since b may be a
    submodule (`from ember import data` imports the ember.data library).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = mod if path.stem == "__init__" else mod.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{target}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def ember_child(name: str) -> str | None:
    """'ember.data.x' -> 'data'; None for anything outside the ember package."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ember" else None


def find_packages(root: Path):
    """Return (core_src, {library name: its src dir})."""
    core_src = root / "packages" / "core" / "src"
    libraries = {}
    for src in sorted(root.glob("packages/*/src")):
        if src == core_src:
            continue
        for lib in sorted((src / "ember").glob("*")):
            if lib.is_dir() and lib.name != "__pycache__":
                libraries[lib.name] = src
    return core_src, libraries


def ast_check(root: Path, core_src: Path, libraries: dict[str, Path]) -> list[str]:
    lib_names = KNOWN_LIBRARIES | set(libraries)
    errors = []

    def scan(src: Path, subdir: Path, owner: str | None):
        for path in sorted(subdir.rglob("*.py*")):
            if path.suffix not in (".py", ".pyi"):
                continue
            where = path.relative_to(root)
            mod = module_name(src, path)
            if owner is None and ember_child(mod) in lib_names:
                continue  # reported below: libraries do not live in core
            for lineno, name in imported_modules(path, mod):
                child = ember_child(name)
                if owner is None and child in lib_names:
                    errors.append(f"{where}:{lineno}: core imports library module {name}")
                elif owner is not None and child == "_private":
                    errors.append(f"{where}:{lineno}: library {owner} imports {name}")
                elif owner is not None and child in lib_names and child != owner:
                    errors.append(f"{where}:{lineno}: library {owner} imports another library ({name})")

    scan(core_src, core_src / "ember", owner=None)
    for lib, src in libraries.items():
        scan(src, src / "ember" / lib, owner=lib)
    for lib in sorted(lib_names):
        if any((core_src / "ember").glob(f"{lib}.py*")) or (core_src / "ember" / lib).is_dir():
            errors.append(f"{(core_src / 'ember' / lib).relative_to(root)}: library {lib} "
                          f"belongs in packages/{lib}/, not in ember-core")
    for src in sorted(root.glob("packages/*/src")):
        if src != core_src and (src / "ember" / "__init__.py").exists():
            errors.append(f"{(src / 'ember' / '__init__.py').relative_to(root)}: "
                          "only ember-core may ship ember/__init__.py")
    return errors


def importlinter_config(core_src: Path, libraries: dict[str, Path]) -> str | None:
    """INI text for lint-imports, with contracts only over existing modules."""
    libs = [f"ember.{lib}" for lib in sorted(libraries)]
    if not libs:
        return None  # every contract would be empty; the AST pass covers rule 1
    # Core's top-level modules, named one by one: the source `ember` would
    # contain the libraries themselves. (ember/__init__.py is left to the AST pass.)
    core = sorted(
        f"ember.{p.stem}"
        for p in (core_src / "ember").iterdir()
        if p.stem not in libraries
        and ((p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py")
        and p.name != "__init__.py"
    )

    def lines(modules):
        return "".join(f"\n    {m}" for m in modules)

    config = "[importlinter]\nroot_package = ember\n"
    if core:
        config += (
            "\n[importlinter:contract:core-no-libraries]\n"
            "name = core does not import the libraries\n"
            f"type = forbidden\nsource_modules ={lines(core)}\nforbidden_modules ={lines(libs)}\n"
        )
    if (core_src / "ember" / "_private").is_dir():
        config += (
            "\n[importlinter:contract:libraries-no-private]\n"
            "name = libraries do not import ember._private\n"
            f"type = forbidden\nsource_modules ={lines(libs)}\nforbidden_modules =\n    ember._private\n"
            # lib -> ember (public API) -> ember._private is how it is meant to work.
            "allow_indirect_imports = true\n"
        )
    if len(libs) > 1:
        config += (
            "\n[importlinter:contract:libraries-independent]\n"
            "name = libraries do not import each other\n"
            f"type = independence\nmodules ={lines(libs)}\n"
        )
    return config


def run_importlinter(root: Path, core_src: Path, libraries: dict[str, Path]) -> bool:
    config = importlinter_config(core_src, libraries)
    if config is None:
        print("import-linter: no library packages yet, nothing to check beyond the AST pass")
        return True
    lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        print("lint-imports not found: run this via `hatch run lint:imports`", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        # Editable installs put each package's src/ dir on sys.path separately,
        # and grimp only scans the directory that `import ember` resolves to.
        # Merge all src trees into one `ember` package, as installed wheels would.
        for src in [core_src, *sorted(set(libraries.values()))]:
            shutil.copytree(src, tmp, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        Path(tmp, "importlinter.ini").write_text(config)
        env = {**os.environ, "PYTHONPATH": tmp}
        result = subprocess.run(
            [lint_imports, "--no-logo", "--no-cache", "importlinter.ini"], cwd=tmp, env=env
        )
    return result.returncode == 0


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    core_src, libraries = find_packages(root)
    if not (core_src / "ember").is_dir():
        print(f"{core_src}/ember not found; run from the repository root",
              file=sys.stderr)
        return 1
    print(f"libraries found: {', '.join(sorted(libraries)) or 'none'}")
    errors = ast_check(root, core_src, libraries)
    for error in errors:
        print(error)
    print(f"AST import check: {len(errors)} violation(s)")
    linter_ok = run_importlinter(root, core_src, libraries)
    return 0 if not errors and linter_ok else 1


if __name__ == "__main__":
    sys.exit(main())
