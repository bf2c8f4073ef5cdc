"""devnet/docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema; the rest are the rules the
schema cannot know: bootstrap addresses that name the bootstrap node's fixed IP and peer identity, fixed
IPs inside the subnet, unique host ports, node commands the real CLI accepts, a healthcheck on every
service, and an image that installs the package with the Makefile's commands.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import multiaddr
import pytest
import yaml
from libp2p.peer.id import ID

from node.cli import build_parser
from node.cli._node_cmd import build_node_config
from node.config import NETWORKS
from node.genesis import load_genesis
from node.keys import load_key_file, public_key_hex
from p2p import load_or_create_peer_key, parse_announce_addr, parse_bootstrap_addr

REPO = Path(__file__).resolve().parents[2]
DEVNET = REPO / "devnet"
COMPOSE_FILE = DEVNET / "docker-compose.yml"
COMPOSE_DATA = DEVNET / "compose"
SCHEMA = COMPOSE_DATA / "compose-spec.json"
#: The reference copy next to the repository (absent in CI, which clones the repository alone).
SHARED_SCHEMA = REPO.parent / "shared" / "spec" / "compose-spec.json"
BOOTSTRAP_KEY = COMPOSE_DATA / "bootstrap.peer.key"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
HEALTHCHECK = ["python", "-m", "devnet.healthcheck"]


# ----------------------------------------------------------------------------------------------- helpers


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict)
    return doc


def _is_adversary(svc: dict[str, Any]) -> bool:
    return "adversaries" in svc.get("profiles", [])


def _node_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The hub nodes: services that run our image (built from the repository) and are no adversary."""
    return {name: svc for name, svc in doc["services"].items() if "build" in svc and not _is_adversary(svc)}


def _adversaries(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in doc["services"].items() if _is_adversary(svc)}


def _hubs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _node_services(doc).items() if name != "bootstrap"}


def _argv(svc: dict[str, Any]) -> list[str]:
    """The `stateless` arguments a node service runs with: image entrypoint/compose entrypoint + command."""
    entrypoint = svc.get("entrypoint", ["stateless"])
    command = svc.get("command", [])
    assert isinstance(entrypoint, list) and isinstance(command, list), "use exec-form lists, not strings"
    assert entrypoint[0] == "stateless", entrypoint
    return [str(a) for a in [*entrypoint[1:], *command]]


def _mounts(svc: dict[str, Any]) -> list[dict[str, Any]]:
    """Service volumes in long form: {type, source, target, read_only}."""
    mounts = []
    for entry in svc.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append(
                {
                    "type": entry["type"],
                    "source": entry.get("source"),
                    "target": entry["target"],
                    "read_only": bool(entry.get("read_only", False)),
                }
            )
            continue
        parts = entry.split(":")
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append({"type": kind, "source": source, "target": target, "read_only": parts[2:] == ["ro"]})
    return mounts


def _host_path(source: str) -> Path:
    """A bind mount source as a path on this machine (relative paths are relative to the compose file)."""
    return (COMPOSE_FILE.parent / source).resolve()


def _node_args(svc: dict[str, Any]) -> Any:
    """The service's `node start` arguments as the real CLI parses them."""
    args = build_parser().parse_args(_argv(svc))
    assert (args.command, args.node_command) == ("node", "start")
    return args


def _ports(svc: dict[str, Any]) -> Iterator[tuple[str, int, int]]:
    """(host ip, host port, container port) for every published port of a service."""
    for entry in svc.get("ports", []):
        if isinstance(entry, dict):
            yield entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])
            continue
        match = re.fullmatch(r"(?:(?P<ip>[\d.]+):)?(?P<host>\d+):(?P<target>\d+)(?:/tcp)?", entry)
        assert match, f"unsupported port syntax {entry!r} (use HOST_IP:HOST_PORT:CONTAINER_PORT)"
        yield match["ip"] or "", int(match["host"]), int(match["target"])


def _ip(svc: dict[str, Any]) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(svc["networks"]["devnet"]["ipv4_address"])


def _subnet(doc: dict[str, Any]) -> ipaddress.IPv4Network:
    (config,) = doc["networks"]["devnet"]["ipam"]["config"]
    return ipaddress.IPv4Network(config["subnet"])


def _bootstrap_peer_id() -> str:
    assert BOOTSTRAP_KEY.is_file(), f"{BOOTSTRAP_KEY} is missing (load_or_create_peer_key would create one)"
    return str(ID.from_pubkey(load_or_create_peer_key(BOOTSTRAP_KEY).public_key))


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for every instruction, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1] :]


def _run_commands(instructions: list[tuple[str, str]]) -> list[list[str]]:
    """Every shell command of every RUN, split on `&&` and tokenised."""
    commands = []
    for keyword, rest in instructions:
        if keyword == "RUN":
            commands += [shlex.split(part) for part in rest.split("&&") if part.strip()]
    return commands


def _makefile_install_commands() -> list[list[str]]:
    """The Makefile's install recipe (the `$(STAMP)` target behind `make run` / `make test`), expanded."""
    text = (REPO / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*)$", text, flags=re.MULTILINE))

    def expand(s: str) -> str:
        for _ in range(5):
            s = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), s)
        return s

    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", text, flags=re.MULTILINE)
    assert recipe, "Makefile has no $(STAMP) install recipe"
    lines = [line.strip() for line in recipe[1].splitlines()]
    return [shlex.split(expand(line)) for line in lines if not line.startswith(("#", "@#"))]


def _glob_regex(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `**/` any number of directories, `*` and `?` within a name."""
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] in "*?":
            out, i = out + ("[^/]*" if glob[i] == "*" else "[^/]"), i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether `path` (relative, /-separated) is left out of the build context: a pattern that matches the
    path or one of its directories excludes it, `!` re-includes, the last matching pattern wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _glob_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


# ------------------------------------------------------------------------------------------- schema


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(_compose()), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def test_schema_validation_catches_mistakes() -> None:
    """The schema check is not vacuous: typical mistakes in a service are reported."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    for mistake in (
        {"healthchek": {"test": ["CMD", "true"]}},  # misspelt key
        {"ports": "22831:2283"},  # a string where a list belongs
        {"depends_on": {"bootstrap": {"condition": "healthy"}}},  # not a valid condition
        {"restart": ["always"]},
    ):
        doc = _compose()
        doc["services"]["hub1"].update(mistake)
        assert list(validator.iter_errors(doc)), f"schema accepted {mistake}"


def test_vendored_schema_is_the_shared_reference() -> None:
    if not SHARED_SCHEMA.is_file():
        pytest.skip(f"no reference copy at {SHARED_SCHEMA} (CI clones the repository alone)")
    assert SCHEMA.read_bytes() == SHARED_SCHEMA.read_bytes(), f"{SCHEMA} differs from {SHARED_SCHEMA}"


# -------------------------------------------------------------------------------------- node services


def test_services_are_a_bootstrap_node_hubs_and_an_optional_chain() -> None:
    doc = _compose()
    nodes = _node_services(doc)
    assert "bootstrap" in nodes
    assert len(_hubs(doc)) >= 2
    assert set(doc["services"]) - set(nodes) - set(_adversaries(doc)) == {"chain"}
    for name, svc in nodes.items():
        assert svc["build"] == {"context": "..", "dockerfile": "Dockerfile"}, name
        assert (
            COMPOSE_FILE.parent / svc["build"]["context"] / svc["build"]["dockerfile"]
        ).resolve() == DOCKERFILE
        assert svc["image"] == nodes["bootstrap"]["image"], "every node runs the same image"
        assert svc["restart"] in ("always", "unless-stopped", "on-failure"), name
        assert svc["stop_signal"] == "SIGINT", f"{name}: the node stops cleanly on SIGINT only"


def test_node_commands_are_accepted_by_the_real_cli(tmp_path: Path) -> None:
    doc = _compose()
    for name, svc in _node_services(doc).items():
        args = _node_args(svc)
        assert args.network == "devnet", name
        assert (args.rpc_host, args.gossip_host, args.metrics_host) == ("0.0.0.0",) * 3, (
            f"{name}: inside a container the node must listen on every interface"
        )
        # The genesis path is inside the container; check it is a mounted file of ours, then build the
        # whole NodeConfig with the file's path on this machine.
        genesis_mounts = [m for m in _mounts(svc) if m["target"] == str(args.genesis)]
        assert len(genesis_mounts) == 1, f"{name}: --genesis {args.genesis} is not mounted"
        assert genesis_mounts[0]["type"] == "bind" and genesis_mounts[0]["read_only"]
        args.genesis = _host_path(genesis_mounts[0]["source"])
        config = build_node_config(args)
        assert config.network == NETWORKS["devnet"]
        assert config.metrics_port == 2284, f"{name}: metrics on the port the image exposes"


def test_every_node_keeps_its_data_in_its_own_named_volume() -> None:
    doc = _compose()
    declared = set(doc.get("volumes") or {})
    used: list[str] = []
    for name, svc in _node_services(doc).items():
        data_dir = str(_node_args(svc).data_dir)
        (data,) = [m for m in _mounts(svc) if m["target"] == data_dir]
        assert data["type"] == "volume", f"{name}: {data_dir} should be a named volume"
        assert data["source"] in declared, f"{name}: volume {data['source']!r} is not declared"
        used.append(data["source"])
    assert len(used) == len(set(used)), f"two nodes share a data volume: {used}"
    for name, svc in doc["services"].items():
        for mount in _mounts(svc):
            if mount["type"] == "bind":
                assert _host_path(mount["source"]).is_file(), f"{name}: {mount['source']} does not exist"
            elif mount["type"] == "volume":
                assert mount["source"] in declared, f"{name}: volume {mount['source']!r} is not declared"


def test_bootstrap_node_has_the_shipped_peer_identity() -> None:
    svc = _compose()["services"]["bootstrap"]
    key_path = str(_node_args(svc).data_dir / "peer.key")
    (key_mount,) = [m for m in _mounts(svc) if m["target"] == key_path]
    assert key_mount["type"] == "bind" and key_mount["read_only"]
    assert _host_path(key_mount["source"]) == BOOTSTRAP_KEY.resolve()


def test_hubs_bootstrap_from_the_bootstrap_nodes_fixed_ip_and_peer_id() -> None:
    doc = _compose()
    bootstrap = doc["services"]["bootstrap"]
    expected = f"/ip4/{_ip(bootstrap)}/tcp/{_node_args(bootstrap).gossip_port}/p2p/{_bootstrap_peer_id()}"
    assert doc["x-bootstrap-addr"] == expected
    assert not _node_args(bootstrap).bootstrap, "the bootstrap node has nobody to bootstrap from"
    for name, svc in _hubs(doc).items():
        addrs = [parse_bootstrap_addr(a) for a in _node_args(svc).bootstrap]
        assert addrs == [expected], f"{name}: --bootstrap {addrs}, expected {expected}"


def test_every_node_announces_its_own_fixed_ip() -> None:
    for name, svc in _node_services(_compose()).items():
        args = _node_args(svc)
        (announce,) = [multiaddr.Multiaddr(parse_announce_addr(a)) for a in args.announce]
        assert announce.value_for_protocol("ip4") == str(_ip(svc)), name
        assert int(announce.value_for_protocol("tcp")) == args.gossip_port, name


def test_fixed_ips_are_unique_and_inside_the_subnet() -> None:
    doc = _compose()
    subnet = _subnet(doc)
    gateway = next(subnet.hosts())  # Docker gives the network's first address to its gateway
    ips = {name: _ip(svc) for name, svc in doc["services"].items()}
    assert len(set(ips.values())) == len(ips), f"duplicate IPs: {ips}"
    for name, ip in ips.items():
        assert ip in subnet and ip not in (subnet.network_address, subnet.broadcast_address, gateway), name
    assert all(list(svc["networks"]) == ["devnet"] for svc in doc["services"].values())


def test_grpc_and_metrics_ports_are_published_on_unique_loopback_host_ports() -> None:
    doc = _compose()
    published: list[int] = []
    for name, svc in doc["services"].items():
        ports = list(_ports(svc))
        assert all(ip == "127.0.0.1" for ip, _, _ in ports), f"{name}: publish on the host's loopback only"
        published += [host for _, host, _ in ports]
        if name in _node_services(doc):
            args = _node_args(svc)
            assert {target for _, _, target in ports} == {args.rpc_port, 2284}, name
    assert len(published) == len(set(published)), f"a host port is published twice: {sorted(published)}"


def test_every_service_has_a_healthcheck_and_nodes_use_grpc_health() -> None:
    doc = _compose()
    for name, svc in doc["services"].items():
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD" and not svc["healthcheck"].get("disable"), name
    for name, svc in _node_services(doc).items():
        args = _node_args(svc)
        expected = ["CMD", *HEALTHCHECK, f"127.0.0.1:{args.rpc_port}"]
        assert svc["healthcheck"]["test"] == expected, name
    # The module is part of the installed distribution, not only of the source tree.
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert "devnet*" in packages["include"]


def test_hubs_wait_for_a_healthy_bootstrap_node_and_nothing_needs_the_chain() -> None:
    doc = _compose()
    for name, svc in _hubs(doc).items():
        assert svc["depends_on"] == {"bootstrap": {"condition": "service_healthy"}}, name
    assert "depends_on" not in doc["services"]["bootstrap"]
    chain = doc["services"]["chain"]
    assert chain["profiles"] == ["chain"], "the chain slot starts only when asked for"
    assert chain["image"].startswith("ghcr.io/foundry-rs/foundry:")


def _shipped_signer_keys() -> dict[int, Path]:
    keys = {int(path.stem.removeprefix("fid-")): path for path in (COMPOSE_DATA / "keys").glob("fid-*.key")}
    assert keys, "no signer keys shipped"
    return keys


def test_genesis_accounts_have_the_shipped_signer_keys() -> None:
    genesis = COMPOSE_DATA / "genesis.json"
    assert load_genesis(genesis, network_name="devnet"), "genesis.json does not load"
    signers = {account["fid"]: account["signers"] for account in json.loads(genesis.read_text())["accounts"]}
    keys = _shipped_signer_keys()
    assert set(signers) == set(keys)
    for fid, key_file in keys.items():
        assert signers[fid] == [public_key_hex(load_key_file(key_file))], key_file.name
        assert "PUBLIC devnet test key" in json.loads(key_file.read_text())["note"]


def test_shipped_accounts_are_the_standard_devnet_test_accounts() -> None:
    """Fid N has the same key in every devnet, the compose one included."""
    accounts = pytest.importorskip("devnet._accounts")
    for fid, key_file in _shipped_signer_keys().items():
        assert public_key_hex(load_key_file(key_file)) == public_key_hex(accounts.devnet_key(fid)), fid


# ------------------------------------------------------------------------------------------- Dockerfile


def test_image_installs_the_package_with_the_makefiles_commands() -> None:
    """`make run` / `make test` (the README's two commands) install with $(STAMP)'s recipe; the image runs
    the same venv and pip commands, only without `-e` and the dev extras."""
    runs = _run_commands(_dockerfile())
    makefile = _makefile_install_commands()
    needed = [cmd for cmd in makefile if cmd[1:3] == ["-m", "venv"] or cmd[1:4] == ["-m", "pip", "install"]]
    assert len(needed) >= 2, makefile
    for cmd in needed:
        image_cmd = [{".[dev]": "."}.get(arg, arg) for arg in cmd if arg != "-e"]
        assert image_cmd in runs, (
            f"the Dockerfile does not run {shlex.join(image_cmd)} (Makefile: {shlex.join(cmd)})"
        )


def test_image_runs_the_stateless_script_as_a_non_root_user() -> None:
    instructions = _dockerfile()
    final = _final_stage(instructions)
    assert all(rest.split()[0] == "python:3.11-slim" for keyword, rest in instructions if keyword == "FROM")
    values = {keyword: rest for keyword, rest in final}
    assert json.loads(values["ENTRYPOINT"]) == ["stateless"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "stateless" in scripts
    assert re.search(r"PATH=/app/\.venv/bin:\$PATH", values["ENV"]), "the venv's scripts must come first"
    assert values["USER"] not in ("root", "0")
    assert values["VOLUME"] in ("/data", '["/data"]')
    assert values["EXPOSE"].split() == ["2282", "2283", "2284"]
    assert values["STOPSIGNAL"] == "SIGINT"
    # The default command is a node the host can reach, and the CLI accepts it.
    args = build_parser().parse_args(json.loads(values["CMD"]))
    assert str(args.data_dir) == "/data" and args.rpc_host == "0.0.0.0" and args.gossip_host == "0.0.0.0"
    healthcheck = json.loads(values["HEALTHCHECK"].partition(" CMD ")[2])
    assert healthcheck == [*HEALTHCHECK, "127.0.0.1:2283"]


def test_dockerignore_keeps_local_state_out_and_the_package_in() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".venv/bin/python", ".git/HEAD", "tests/interop/node_modules/x.js", ".hub-data/peer.key",
                 "node/__pycache__/x.pyc", ".mypy_cache/x", "alice.key"):  # fmt: skip
        assert _dockerignored(path, patterns), f"{path} would be sent to the Docker build"
    for path in ("pyproject.toml", "README.md", "node/cli/_main.py", "p2p/_keys.py", "protocols/errors.py",
                 "devnet/__init__.py", "devnet/healthcheck.py", "Dockerfile"):  # fmt: skip
        assert not _dockerignored(path, patterns), f"{path} is needed by the build but ignored"


# ------------------------------------------------------------------------------------------- adversaries


def test_adversaries_attack_through_the_bootstrap_node_only_when_asked_for() -> None:
    doc = _compose()
    adversaries = _adversaries(doc)
    modes = {}
    for name, svc in adversaries.items():
        assert svc["profiles"] == ["adversaries"], f"{name} must start only with --profile adversaries"
        assert svc["image"] == doc["services"]["bootstrap"]["image"] and svc["build"] == {
            "context": "..",
            "dockerfile": "Dockerfile",
        }
        assert svc["depends_on"] == {"bootstrap": {"condition": "service_healthy"}}, name
        args = build_parser().parse_args(_argv(svc))
        assert (args.command, args.devnet_command) == ("devnet", "adversary"), name
        assert [parse_bootstrap_addr(a) for a in args.bootstrap] == [doc["x-bootstrap-addr"]], name
        if args.genesis is not None:
            (mount,) = [m for m in _mounts(svc) if m["target"] == str(args.genesis)]
            assert _host_path(mount["source"]) == (COMPOSE_DATA / "genesis.json").resolve(), name
        assert not list(_ports(svc)), f"{name} has nothing to publish"
        modes[args.mode] = name
    assert set(modes) == {"forge", "eclipse"}
