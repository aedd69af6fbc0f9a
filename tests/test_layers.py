"""Boundaries that import-linter cannot see, checked on the syntax tree of every product module.

import-linter (``[tool.importlinter]`` in pyproject.toml, run by tests/test_lint.py) checks who
imports whom. What a module *says* is checked here, in the four product packages (``depin``,
``indexer``, ``executor``, ``depinctl``; tests, scripts and tools are not the product and are exempt):

- Redis key names are spelled only in ``depin/keys.py``;
- container options (limits, mounts, capabilities, the Docker SDK's create calls) only in
  ``executor/containers.py``;
- JSON-RPC method names only in the gateway ``depin/chain/`` (anvil's ``anvil_*``/``evm_*`` also in
  the dev chain's ``depinctl/anvil.py``);
- no module imports another module's private name (``from x import _name``);
- a function-local import says why on its line: ``# lazy: start-up`` or ``# lazy: optional``.

Each check counts its offences per file. ``KNOWN_*`` below lists the offences that exist while issue
10's work packages are in flight (the SDK, indexer and executor are being reworked in parallel): a
file may not get worse, and a file that got better must have its count lowered (or its line
deleted), so these lists only shrink. The lead empties them after merging the work packages.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("depin", "indexer", "executor", "depinctl")
GENERATED = {"depin/contracts.py"}

# ---------------------------------------------------------------------------------------- what is checked

KEY_WORDS = (
    "job|jobs|lease|deliveries|active|deferred|submitted|broker|cursor|blocks|undo|provider|providers|"
    "account|totals|params|events|due"
)
# a Redis key: no spaces or slashes, at least one colon, one of the data model's words as a segment
KEY_SHAPE = re.compile(r"^[\w{}*.\-]*:[\w{}*.:\-]*$")
KEY_SEGMENT = re.compile(rf"(^|:)({KEY_WORDS})(:|$)")
KEY_PREFIXES = ("depin-exec:", "executor:", "depin:")
REDIS_METHODS = {
    "hget", "hset", "hgetall", "hmget", "hdel", "hincrby", "hsetnx", "zadd", "zrem", "zscore", "zcard",
    "zrange", "zrangebyscore", "zrevrange", "zrevrangebyscore", "xadd", "xrange", "xrevrange", "xreadgroup",
    "xread", "xack", "xautoclaim", "xgroup_create", "xinfo_groups", "xpending", "sadd", "srem", "smembers",
    "sismember", "scard", "lpush", "rpush", "lrange", "incr", "incrby", "expire", "pexpire", "delete", "scan_iter",
}

CONTAINER_CALLS = re.compile(r"(^|\.)(containers\.(create|run)|api\.(create_container|create_host_config))$|^docker\.types\.")
CONTAINER_OPTIONS = {
    "mem_limit", "memswap_limit", "nano_cpus", "cpu_quota", "pids_limit", "network_mode", "network_disabled",
    "cap_drop", "cap_add", "security_opt", "read_only", "tmpfs", "ulimits", "mounts", "privileged", "devices",
}
CONTAINERS_MODULE = "executor/containers.py"

RPC_NAME = re.compile(r"^(eth|net|web3|debug|txpool)_\w+$")
DEV_RPC_NAME = re.compile(r"^(anvil|evm)_\w+$")
GATEWAY = "depin/chain/"
DEV_RPC_MODULE = "depinctl/anvil.py"

LAZY = "# lazy:"

# ---------------------------------------------------------------------------------------- known offences

# Each: file -> number of offences today, and who removes them. Lower a count when you fix one.
KNOWN_REDIS_KEYS: dict[str, int] = {
    "depinctl/devnet.py": 2,  # C: the executor's key prefix and broker prefix -> depin.keys (needs A1)
    "executor/lease.py": 1,  # B: lease key -> depin.keys.ExecKeys
    "indexer/reducer.py": 2,  # B2: job/provider prefixes -> depin.keys
}
KNOWN_CONTAINER_OPTIONS: dict[str, int] = {}
KNOWN_RPC_NAMES: dict[str, int] = {
    "depinctl/demo.py": 2,  # C: typed gateway methods (after A2)
    "depinctl/devchain.py": 27,  # C: depinctl/anvil.py + typed gateway methods (after A1/A2)
    "depinctl/devnet.py": 7,  # C: depin.chain.probe (after A1)
    "executor/runtime.py": 1,  # B: typed gateway methods (after A2)
}
KNOWN_PRIVATE_IMPORTS: dict[str, int] = {}
KNOWN_LOCAL_IMPORTS: dict[str, int] = {}


# ---------------------------------------------------------------------------------------- the walk


def product_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if rel(p) not in GENERATED)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (of the module, classes and functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def string_literals(tree: ast.AST) -> Iterator[str]:
    """Every string constant that is not a docstring, and every f-string with ``{}`` for its fields."""
    skip = docstring_nodes(tree)
    inside_fstrings = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip | inside_fstrings:
            yield node.value


def dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain (other parts as ``?``)."""
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def calls(tree: ast.AST) -> Iterator[ast.Call]:
    return (n for n in ast.walk(tree) if isinstance(n, ast.Call))


def module_name(name: str) -> str:
    """``depin.chain`` for ``depin/chain/__init__.py``, ``depin.keys`` for ``depin/keys.py``."""
    parts = name.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_module(node: ast.ImportFrom, name: str) -> str:
    """The absolute module name of a ``from ... import`` in the file `name`."""
    if not node.level:
        return node.module or ""
    package = module_name(name).split(".")
    if not name.endswith("/__init__.py"):
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


# ---------------------------------------------------------------------------------------- the checks


def redis_key_offences(name: str, tree: ast.Module, source: str) -> int:
    if name == "depin/keys.py":
        return 0
    found = 0
    for text in string_literals(tree):
        if text.startswith(KEY_PREFIXES) or (KEY_SHAPE.match(text) and KEY_SEGMENT.search(text)):
            found += 1
    for call in calls(tree):
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in REDIS_METHODS and call.args:
            first = call.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found += 1
    return found


def container_option_offences(name: str, tree: ast.Module, source: str) -> int:
    if name == CONTAINERS_MODULE:
        return 0
    found = 0
    for call in calls(tree):
        if CONTAINER_CALLS.search(dotted(call.func)):
            found += 1
        found += sum(1 for kw in call.keywords if kw.arg in CONTAINER_OPTIONS)
    return found


def rpc_name_offences(name: str, tree: ast.Module, source: str) -> int:
    if name.startswith(GATEWAY):
        return 0
    found = 0
    for text in string_literals(tree):
        if text == "jsonrpc" or RPC_NAME.match(text) or DEV_RPC_NAME.match(text) and name != DEV_RPC_MODULE:
            found += 1
    return found


def private_import_offences(name: str, tree: ast.Module, source: str) -> int:
    found = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = imported_module(node, name)
            ours = origin.split(".")[0] in PACKAGES
            if ours and origin != module_name(name) and any(a.name.startswith("_") and not a.name.startswith("__") for a in node.names):
                found += 1
    return found


def type_checking_blocks(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and dotted(node.test).split(".")[-1] == "TYPE_CHECKING":
            found |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return found


def local_import_offences(name: str, tree: ast.Module, source: str) -> int:
    lines = source.splitlines()
    exempt = type_checking_blocks(tree)
    found = 0
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in exempt:
                span = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
                if not any(LAZY in line for line in span):
                    found += 1
    return found


Check = Callable[[str, ast.Module, str], int]  # (path from the repository root, tree, source) -> offences


def offences(check: Check) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in product_modules():
        source = path.read_text()
        n = check(rel(path), ast.parse(source, filename=str(path)), source)
        if n:
            counts[rel(path)] = n
    return counts


def compare(found: Counter[str], known: dict[str, int], what: str) -> None:
    worse = {f: n for f, n in found.items() if n > known.get(f, 0)}
    better = {f: (found.get(f, 0), n) for f, n in known.items() if found.get(f, 0) < n}
    problems = [f"{f}: {n} {what} (allowed: {known.get(f, 0)})" for f, n in sorted(worse.items())]
    problems += [f"{f}: down to {now} {what} from {was}: lower its count in this test (or delete the line)"
                 for f, (now, was) in sorted(better.items())]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------- tests


def test_redis_keys_only_in_depin_keys() -> None:
    compare(offences(redis_key_offences), KNOWN_REDIS_KEYS, "Redis key literal(s) outside depin/keys.py")


def test_container_options_only_in_executor_containers() -> None:
    compare(offences(container_option_offences), KNOWN_CONTAINER_OPTIONS, "container option(s) outside executor/containers.py")


def test_json_rpc_method_names_only_in_the_gateway() -> None:
    compare(offences(rpc_name_offences), KNOWN_RPC_NAMES, "JSON-RPC method name(s) outside depin/chain/")


def test_no_private_names_imported_across_modules() -> None:
    compare(offences(private_import_offences), KNOWN_PRIVATE_IMPORTS, "import(s) of another module's private name")


def test_local_imports_are_explained() -> None:
    compare(offences(local_import_offences), KNOWN_LOCAL_IMPORTS, "function-local import(s) without `# lazy: start-up|optional`")


# ---------------------------------------------------------------------------------------- the checks catch what they claim


@pytest.mark.parametrize(
    ("check", "source"),
    [
        (redis_key_offences, 'KEY = f"{prefix}:job:{job_id}"'),
        (redis_key_offences, 'r.hget("depin:31337:meta", "cursor")'),
        (container_option_offences, "client.containers.run(image, mem_limit=1)"),
        (rpc_name_offences, 'rpc.call("eth_getLogs", [])'),
        (rpc_name_offences, 'rpc.call("evm_mine", [])'),
        (private_import_offences, "from depin.transactions import _revert_data"),
        (local_import_offences, "def f():\n    import json\n"),
    ],
)
def test_each_check_catches_an_offence(check: Check, source: str) -> None:
    assert check("depinctl/probe.py", ast.parse(source), source) >= 1


def test_docstrings_and_explained_local_imports_pass() -> None:
    source = '"""Keys look like depin:31337:0xabc:job:1."""\ndef f():\n    import json  # lazy: start-up\n'
    tree = ast.parse(source)
    assert local_import_offences("depinctl/probe.py", tree, source) == 0
    assert redis_key_offences("depinctl/probe.py", tree, source) == 0
