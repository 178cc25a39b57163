"""The import graph of `gram_jax`: layered, acyclic, no private names shared.

The graph is read from the sources with `ast`: every ``import`` and ``from
... import`` of a `gram_jax` module, at module level and inside functions,
relative imports resolved, plus the package ``__init__`` modules an import
runs on the way (``from gram_jax.models.supernet import Layout`` also runs
``gram_jax/models/__init__.py``). Nothing of `gram_jax` is imported, so the
test needs no JAX and takes well under a second.

The layers are those of docs/architecture.md, lowest first.
"""

from __future__ import annotations

import ast
import collections
import pathlib
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "gram_jax"
PACKAGE = "gram_jax"

# Lowest first. A module may import modules of its own layer or of a lower
# one. An entry names a module, or a package and everything in it; the
# longest entry that matches a module decides its layer (``gram_jax`` itself
# matches only the top-level ``__init__``).
LAYERS = (
    (
        "base",
        (
            "gram_jax",
            "gram_jax.errors",
            "gram_jax.shapes",
            "gram_jax.depthwise",
        ),
    ),
    (
        "descriptions",
        (
            "gram_jax.space",
            "gram_jax.arch",
            "gram_jax.metagraph",
            "gram_jax.data",
            "gram_jax.config",
            "gram_jax.configs",
        ),
    ),
    ("networks", ("gram_jax.models",)),
    (
        "running",
        (
            "gram_jax.io",
            "gram_jax.train",
            "gram_jax.run",
            "gram_jax.scale",
            "gram_jax.export",
        ),
    ),
    ("costs", ("gram_jax.cost", "gram_jax.report")),
    (
        "methods",
        ("gram_jax.search", "gram_jax.singlepath", "gram_jax.autoshrink"),
    ),
    (
        "workflows",
        (
            "gram_jax.derive",
            "gram_jax.fulltrain",
            "gram_jax.experiment",
            "gram_jax.ablation",
            "gram_jax.compare",
            "gram_jax.sweep",
        ),
    ),
    ("commands", ("gram_jax.commands", "gram_jax.cli")),
)


class Edge(NamedTuple):
  """`source` imports `target` at `line`; `implicit`: a package whose
  ``__init__`` the import runs on the way to the module it names."""

  source: str
  target: str
  line: int
  implicit: bool = False


def modules(root: pathlib.Path = ROOT) -> Dict[str, pathlib.Path]:
  """Dotted module name -> source file, for every module under `root`."""
  out = {}
  for path in sorted(root.rglob("*.py")):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts.pop()
    out[".".join(parts)] = path
  return out


def _ancestors(name: str) -> List[str]:
  parts = name.split(".")
  return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_ours(name: Optional[str]) -> bool:
  return bool(name) and (name == PACKAGE or name.startswith(PACKAGE + "."))


def _private(name: str) -> bool:
  return name.startswith("_") and not (
      name.startswith("__") and name.endswith("__")
  )


def parse(name: str, path: pathlib.Path, known: Set[str]):
  """The import edges of module `name` and its uses of private names.

  Returns:
    ``(edges, private)``: `Edge` s to `gram_jax` modules, and one message
    per private name of another `gram_jax` module it imports or reads as
    an attribute of an imported module.
  """
  is_package = path.name == "__init__.py"
  tree = ast.parse(path.read_text(), str(path))
  edges: List[Edge] = []
  private: List[str] = []
  bound: Dict[str, str] = {}  # local name -> gram_jax module it refers to
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        if _is_ours(a.name):
          edges.append(Edge(name, a.name, node.lineno))
          local = a.asname or a.name.split(".")[0]
          bound[local] = a.name if a.asname else PACKAGE
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
      else:
        target = node.module
      if not _is_ours(target):
        continue
      for a in node.names:
        sub = f"{target}.{a.name}"
        if sub in known:
          edges.append(Edge(name, sub, node.lineno))
          bound[a.asname or a.name] = sub
        else:
          edges.append(Edge(name, target, node.lineno))
        if _private(a.name) and target != name:
          private.append(f"{name}:{node.lineno} imports {a.name} from {target}")
  for node in ast.walk(tree):
    if (
        isinstance(node, ast.Attribute)
        and _private(node.attr)
        and isinstance(node.value, ast.Name)
        and node.value.id in bound
        and bound[node.value.id] != name
    ):
      private.append(
          f"{name}:{node.lineno} reads {node.value.id}."
          f"{node.attr} of {bound[node.value.id]}"
      )
  return edges, private


def graph(root: pathlib.Path = ROOT):
  """``(modules, edges, private)`` of the package at `root`.

  Each import also runs the ``__init__`` of the packages above its target;
  those count as edges too, except the importer's own packages (already
  being imported when it runs).
  """
  mods = modules(root)
  known = set(mods)
  edges: List[Edge] = []
  private: List[str] = []
  for name, path in mods.items():
    found, bad = parse(name, path, known)
    private += bad
    own = set(_ancestors(name)) | {name}
    for e in found:
      edges.append(e)
      for up in _ancestors(e.target):
        if up not in own:
          edges.append(Edge(name, up, e.line, implicit=True))
  return mods, edges, private


def find_cycles(
    nodes: Iterable[str], arrows: Dict[str, Set[str]]
) -> List[List[str]]:
  """The strongly connected components of more than one node (Tarjan's
  algorithm; self-imports are ignored), each as its shortest cycle through
  its first node ``[a, b, ..., a]``."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  on_stack: Set[str] = set()
  components: List[List[str]] = []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(arrows.get(v, ())):
      if w == v:
        continue
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        components.append(sorted(component))

  for v in sorted(nodes):
    if v not in index:
      visit(v)
  return [_cycle_through(c, arrows) for c in sorted(components)]


def _cycle_through(
    component: Sequence[str], arrows: Dict[str, Set[str]]
) -> List[str]:
  """The shortest cycle from the first node of `component` back to it."""
  start, inside = component[0], set(component)
  prev = {start: None}
  queue = collections.deque([start])
  while queue:
    v = queue.popleft()
    for w in sorted(arrows.get(v, ())):
      if w == start:
        path = [v]
        while prev[path[-1]] is not None:
          path.append(prev[path[-1]])
        return path[::-1] + [start]
      if w in inside and w not in prev:
        prev[w] = v
        queue.append(w)
  raise AssertionError(f"no cycle through {start}")


def layer_of(module: str) -> Optional[int]:
  """The index in `LAYERS` of `module`'s layer (None: not listed)."""
  best, found = -1, None
  for i, (_, entries) in enumerate(LAYERS):
    for e in entries:
      hit = module == e or (e != PACKAGE and module.startswith(e + "."))
      if hit and len(e) > best:
        best, found = len(e), i
  return found


def package_of(module: str) -> str:
  """``gram_jax.x`` for ``gram_jax.x`` and everything in it."""
  return ".".join(module.split(".")[:2])


def _report(cycles: List[List[str]], arrows: Dict[str, Set[str]]) -> str:
  """Each cycle, and every node of its component that the cycle misses."""
  lines = []
  for c in cycles:
    lines.append("  " + " -> ".join(c))
    reach = {c[0]}
    frontier = [c[0]]
    while frontier:  # the component: reachable from c[0] and reaching it
      v = frontier.pop()
      for w in arrows.get(v, ()):
        if w not in reach:
          reach.add(w)
          frontier.append(w)
    rest = sorted(v for v in reach - set(c) if c[0] in _reachable(v, arrows))
    if rest:
      lines.append("    (on a cycle with it as well: " + ", ".join(rest) + ")")
  return "\n".join(lines)


def _reachable(start: str, arrows: Dict[str, Set[str]]) -> Set[str]:
  seen, frontier = {start}, [start]
  while frontier:
    for w in arrows.get(frontier.pop(), ()):
      if w not in seen:
        seen.add(w)
        frontier.append(w)
  return seen


def _arrows(edges: Iterable[Edge], key=lambda m: m) -> Dict[str, Set[str]]:
  out: Dict[str, Set[str]] = collections.defaultdict(set)
  for e in edges:
    if key(e.source) != key(e.target):
      out[key(e.source)].add(key(e.target))
  return out


@pytest.fixture(scope="module")
def built():
  return graph()


def test_every_module_has_a_layer(built):
  mods, _, _ = built
  assert ROOT.is_dir() and len(mods) > 50
  missing = sorted(m for m in mods if layer_of(m) is None)
  assert not missing, (
      f"modules without a layer: {', '.join(missing)}; add "
      "them to LAYERS here and to docs/architecture.md"
  )
  unused = [
      e
      for _, entries in LAYERS
      for e in entries
      if not any(m == e or m.startswith(e + ".") for m in mods)
  ]
  assert not unused, f"LAYERS entries that match no module: {unused}"


def test_no_import_of_a_missing_module(built):
  mods, edges, _ = built
  missing = sorted({
      f"{e.source}:{e.line} imports {e.target}"
      for e in edges
      if e.target not in mods
  })
  assert not missing, "\n".join(missing)


def test_no_cycle_between_modules(built):
  mods, edges, _ = built
  arrows = _arrows(edges)
  cycles = find_cycles(mods, arrows)
  assert not cycles, "import cycles:\n" + _report(cycles, arrows)


def test_no_cycle_between_packages(built):
  mods, edges, _ = built
  arrows = _arrows(edges, package_of)
  cycles = find_cycles({package_of(m) for m in mods}, arrows)
  assert not cycles, "import cycles between packages:\n" + _report(
      cycles, arrows
  )


def test_no_private_name_of_another_module(built):
  _, _, private = built
  assert not private, "private names used across modules:\n" + "\n".join(
      "  " + p for p in private
  )


def test_imports_respect_the_layers(built):
  _, edges, _ = built
  up: Dict[tuple, str] = {}
  # Explicit edges first: a package __init__ run on the way is reported
  # only where the module named is not.
  for e in sorted(edges, key=lambda e: e.implicit):
    low, high = layer_of(e.source), layer_of(e.target)
    if low is not None and high is not None and high > low:
      up.setdefault(
          (e.source, e.line),
          (
              f"{e.source}:{e.line} ({LAYERS[low][0]}) imports {e.target} "
              f"({LAYERS[high][0]})"
          ),
      )
  assert not up, "imports of a higher layer:\n" + "\n".join(
      "  " + up[k] for k in sorted(up)
  )


# --- the checks can fail --------------------------------------------------------


def test_find_cycles_reports_the_path():
  arrows = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
  assert find_cycles("abcde", arrows) == [["a", "b", "c", "a"]]
  assert find_cycles("ab", {"a": {"b"}}) == []


def test_parse_resolves_relative_imports_and_finds_private_names(tmp_path):
  pkg = tmp_path / "gram_jax"
  (pkg / "sub").mkdir(parents=True)
  (pkg / "__init__.py").write_text("")
  (pkg / "low.py").write_text("_hidden = 1\nvisible = 2\n")
  (pkg / "sub" / "__init__.py").write_text("")
  (pkg / "sub" / "mod.py").write_text(
      "from .. import low\n"
      "from ..low import _hidden\n"
      "def f():\n"
      "  import gram_jax.low as l\n"
      "  return low._hidden + l.visible\n"
  )
  mods, edges, private = graph(pkg)
  assert set(mods) == {
      "gram_jax",
      "gram_jax.low",
      "gram_jax.sub",
      "gram_jax.sub.mod",
  }
  # The importer's own packages (here gram_jax) are not edges.
  assert sorted(
      (e.target, e.line) for e in edges if e.source == "gram_jax.sub.mod"
  ) == [("gram_jax.low", 1), ("gram_jax.low", 2), ("gram_jax.low", 4)]
  assert private == [
      "gram_jax.sub.mod:2 imports _hidden from gram_jax.low",
      "gram_jax.sub.mod:5 reads low._hidden of gram_jax.low",
  ]
