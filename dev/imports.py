#!/usr/bin/env python3
"""The library's import graph: `dev/imports.py` prints every import cycle
among lib/uwsgi_deploy's modules (imports inside functions count: they run
too) and exits 1 if there is one; `dev/imports.py --tools` also prints how
many modules each bin/ tool loads (ours, and in all, to its --help, which
comes after its imports), measured with python -X importtime."""
import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "lib", "uwsgi_deploy")


def import_graph(package=PACKAGE):
    """{module: set of the package's modules it imports}."""
    modules = {name[:-3] for name in os.listdir(package) if name.endswith(".py")}
    graph = {}
    for module in modules:
        with open(os.path.join(package, module + ".py")) as stream:
            tree = ast.parse(stream.read())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:   # from . import a, b
                    found.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("uwsgi_deploy."):
                found.add(node.module.split(".")[1])
        graph[module] = {m for m in found if m in modules and m != module}
    return graph


def cycles(graph):
    """Each import cycle once, as a list of modules [a, b, ..., a]."""
    found, seen = [], set()

    def visit(module, path):
        for target in sorted(graph[module]):
            if target in path:
                cycle = path[path.index(target):] + [target]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    found.append(cycle)
            elif target not in done:
                visit(target, path + [target])
        done.add(module)
    done = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return found


def tool_modules(tool):
    """(modules of ours, modules in all) that bin/TOOL --help loads."""
    result = subprocess.run([sys.executable, "-X", "importtime", os.path.join(ROOT, "bin", tool), "--help"],
                            capture_output=True, text=True)
    lines = [line for line in result.stderr.splitlines()
             if line.startswith("import time:") and "self [us]" not in line]
    return sum("uwsgi_deploy." in line for line in lines), len(lines)


def main(argv):
    found = cycles(import_graph())
    for cycle in found:
        print("import cycle: " + " -> ".join(cycle))
    if "--tools" in argv:
        for tool in sorted(os.listdir(os.path.join(ROOT, "bin"))):
            ours, total = tool_modules(tool)
            print(f"{tool:18} {ours:3} of ours {total:4} in all")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
