"""Dependencies point down only: every import of every module (including imports inside
functions, which is where the heavy and the optional ones live) is read with `ast`, and the tree
must have no import circle between modules and no import from a higher layer.

The layer order, bottom first (a module may import its own layer and the layers below):

    proto             the protobuf schema and the client transport (channels, windowed Ingest)
    codec             learned codec, bitstream, paths, runtime registry (codec.runtime)
    edge              sources, detector, ROI policy, streaming client
    export            builds and verifies model files (ONNX, TensorRT, detector export)
    cloud             gRPC server, storage, selective decode, query client
    roistream (local) a whole deployment in one process, and the demo on it
    bench             benchmarks
    roistream.cli     the combined CLI, which wires packages that must not import each other
    tests
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("proto", "codec", "edge", "export", "cloud", "roistream", "bench", "tests")
# bottom first; each layer is a tuple of module prefixes (the longest matching prefix decides)
LAYERS = (
    ("proto",),
    ("codec",),
    ("edge",),
    ("export",),
    ("cloud",),
    ("roistream.local", "roistream.demo", "roistream"),
    ("bench",),
    ("roistream.cli",),
    ("tests",),
)
ORDER = " < ".join("|".join(layer) for layer in LAYERS)


def module_files() -> dict[str, Path]:
    """{dotted module name: file} of every module of the project's packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name an import statement anywhere in the file may refer to (absolute)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def import_graph() -> dict[str, set[str]]:
    """{module: modules of the project it imports}; a name resolves to the longest module it names."""
    files = module_files()

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        targets = {resolve(name) for name in imported_names(module, path)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} belongs to no layer of {ORDER}"
    return rank


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
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
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_is_read_from_every_module():
    graph = import_graph()
    # a function-level import is seen (codec.runtime.registry imports codec.api inside make_codec)
    assert "codec.api" in graph["codec.runtime.registry"]
    assert "codec.runtime.onnxruntime_backend" in graph["codec.runtime.registry"]
    assert {"bench.cli", "codec.cli", "edge.cli"} <= graph["roistream.cli"]
    assert layer_of("roistream.cli") > layer_of("bench") > layer_of("roistream.local") > layer_of("cloud")


def test_no_import_circles():
    found = cycles(import_graph())
    assert not found, "import circles between modules:\n  " + "\n  ".join(" <-> ".join(c) for c in found)


def test_imports_point_down_the_layers():
    upward = sorted(f"{module} imports {target}" for module, targets in import_graph().items()
                    for target in targets if layer_of(target) > layer_of(module))
    assert not upward, f"imports from a higher layer (order, bottom first: {ORDER}):\n  " + "\n  ".join(upward)


def test_a_circle_and_an_upward_import_are_caught():
    """The checks themselves fail on what they exist to catch."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("codec.api") < layer_of("edge.policy")


def test_the_analytics_client_imports_without_torch():
    """A machine that only queries regions (PNG, raw or records) needs no torch: the client loads the
    codec only when it decodes a record itself; nor the distributed backends' client libraries (psycopg,
    boto3, nats), which only the modules that use them import. Checked in a fresh interpreter, where
    nothing else has imported them yet."""
    code = ("import sys; import cloud.client, cloud.pixels; from cloud.client import CloudClient, region_query; "
            "region_query('s', labels=['person'], output='records'); "
            "heavy = sorted(m for m in ('torch', 'ultralytics', 'onnxruntime', 'codec.api', 'psycopg', 'boto3', "
            "'botocore', 'nats') if m in sys.modules); "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing cloud.client pulled in: {out.stdout.strip()}"
