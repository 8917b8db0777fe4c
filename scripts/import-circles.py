#!/usr/bin/env python3
"""Lists the import circles between the files of each crate of the workspace.

A file imports another when it names an item of the other's module through
`crate::`, `super::` or `self::` paths (in `use` lines or inline). A circle is
a group of files each reaching the others through such imports; each crate
should have none. Test modules (`#[cfg(test)] mod tests`) are left out.

    scripts/import-circles.py            # every crate; exit 1 if a circle exists
    scripts/import-circles.py scheduler  # one crate
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ["proto", "common", "lake", "worker", "scheduler", "cli", "bench", "tests"]
PATH = re.compile(r"\b((?:crate|super|self)(?:::(?:\{[^;]*?\}|[A-Za-z_][A-Za-z0-9_]*))+)", re.S)


def modules(src: Path) -> dict:
    """Module path (tuple) → file, for every file of the crate."""
    found = {}
    for file in src.rglob("*.rs"):
        parts = list(file.relative_to(src).with_suffix("").parts)
        if parts[-1] == "mod":
            parts.pop()
        if parts in (["lib"], ["main"]):
            parts = []
        found[tuple(parts)] = file
    return found


def expand(path: str) -> list:
    """`a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`."""
    brace = path.find("{")
    if brace < 0:
        return [path]
    head, body = path[:brace], path[brace + 1 : path.rindex("}")]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    out = []
    for item in items:
        item = re.sub(r"\s+as\s+\w+", "", item.strip())
        if item and item != "self":
            out += expand(head + item)
        elif item == "self":
            out.append(head.rstrip(":"))
    return out


def code_of(file: Path) -> str:
    text = file.read_text()
    cut = re.search(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod \w+\s*\{", text)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


USE = re.compile(r"\b(pub(?:\([a-z]+\))?\s+)?use\s+([^;]+);")


def absolute(here: tuple, path: str) -> list:
    parts = path.split("::")
    base = list(here)
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    else:
        while parts and parts[0] in ("self", "super"):
            if parts.pop(0) == "super":
                base = base[:-1]
    return base + parts


def aliases(mods: dict) -> dict:
    """Per module, the names its `use` lines bring in (name → absolute path)."""
    out = {}
    for here, file in mods.items():
        names = {}
        for _, body in USE.findall(code_of(file)):
            body = re.sub(r"\s+", " ", body).strip()
            if not body.startswith(("crate", "self", "super")):
                continue
            for path in expand(body.replace(" as ", "@").replace(" ", "")):
                path, _, alias = path.partition("@")
                full = absolute(here, path)
                names[alias or full[-1]] = full
        out[here] = names
    return out


def resolve(mods: dict, names: dict, full: list, depth: int = 0):
    for n in range(len(full), -1, -1):
        module = tuple(full[:n])
        if module in mods:
            rest = full[n:]
            alias = names.get(module, {}).get(rest[0]) if rest else None
            if alias and depth < 8 and alias != full[: n + 1]:
                return resolve(mods, names, alias + rest[1:], depth + 1)
            return mods[module]
    return None


def edges(src: Path) -> dict:
    mods = modules(src)
    names = aliases(mods)
    graph = {file: set() for file in mods.values()}
    for here, file in mods.items():
        code = code_of(file)
        # A module's re-exports of its own submodules' items are its
        # interface, not a dependency on them.
        facade = [m.span() for m in USE.finditer(code) if m.group(1)]
        for m in PATH.finditer(code):
            in_pub_use = any(start <= m.start() < end for start, end in facade)
            for path in expand(re.sub(r"\s+", "", m.group(1))):
                full = absolute(here, path)
                if in_pub_use and tuple(full[: len(here)]) == here and len(full) > len(here):
                    continue
                target = resolve(mods, names, full)
                if target is not None and target != file:
                    graph[file].add(target)
    return graph


def circles(graph: dict) -> list:
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    crates = sys.argv[1:] or CRATES
    found = 0
    for crate in crates:
        src = ROOT / crate / "src"
        graph = edges(src)
        for group in circles(graph):
            found += 1
            members = set(group)
            print(f"circle in {crate}: {len(group)} files")
            for file in group:
                back = sorted(str(t.relative_to(ROOT)) for t in graph[file] if t in members)
                print(f"  {file.relative_to(ROOT)} -> {', '.join(back)}")
    if found:
        return 1
    print(f"no import circles in {', '.join(crates)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
