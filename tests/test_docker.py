"""Static checks of docker/ (no Docker engine here): every COPY source exists, the compose file
parses, images are pinned, run as a non-root user with healthchecks, and every roistream command
they run parses with the real CLI."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from roistream.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = ("edge.Dockerfile", "cloud.Dockerfile")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            op, _, rest = buf.partition(" ")
            out.append((op.upper(), rest.strip()))
            buf = ""
    return out


def roistream_argvs_in_shell(cmd: str) -> list[list[str]]:
    """argv lists of every `roistream ...` call in a shell command line (up to a redirection)."""
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    argvs, words = [], []
    for token in list(lexer) + [";"]:
        if token and set(token) <= set("&|;<>()"):  # an operator outside quotes ends a simple command
            if words and words[0] == "roistream":
                argvs.append(words[1:])
            words = [] if token not in (">", ">>", "<") else ["<redirect>"]
        elif words[:1] != ["<redirect>"]:
            words.append(token)
    return argvs


def assert_parses(argv: list[str]) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on an unknown flag or a missing argument (0 after --help)
        if exc.code == 0 and ("--help" in argv or "-h" in argv):
            return
        pytest.fail(f"`roistream {' '.join(argv)}` does not parse with the CLI (exit {exc.code})")
    assert callable(args.func)


def check_python_c(code: str) -> None:
    tree = ast.parse(code)  # a syntax error fails here
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            assert importlib.util.find_spec(name.split(".")[0]) is not None, f"healthcheck imports {name}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_copies_existing_paths_pins_base_and_drops_root(name):
    path = DOCKER / name
    ins = instructions(path)
    args = {m.group(1): m.group(2) for op, rest in ins if op == "ARG"
            for m in [re.match(r"(\w+)=(\S+)", rest)] if m}
    froms = [rest for op, rest in ins if op == "FROM"]
    assert froms, "no FROM"
    for ref in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref.split()[0])
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"unpinned base image {image}"
    if name == "edge.Dockerfile":
        assert froms[0].startswith("${TRT_IMAGE}") and args["TRT_IMAGE"].startswith("nvcr.io/nvidia/tensorrt:")
    else:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", args["PYTHON_IMAGE"])
    copies = [rest for op, rest in ins if op in ("COPY", "ADD")]
    assert copies
    for rest in copies:
        words = [w for w in shlex.split(rest) if not w.startswith("--")]
        for src in words[:-1]:
            assert (REPO / src).exists(), f"{name} copies {src}, which is not in the repository"
    assert (DOCKER / f"{name}.dockerignore").is_file()
    users = [rest for op, rest in ins if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    assert any(op == "HEALTHCHECK" for op, _ in ins)
    for op, rest in ins:
        if op == "RUN":
            for pin in re.findall(r"\"([A-Za-z0-9_.\-\[\]]+[=<>!~]=?[^\"]*)\"", rest):
                assert "==" in pin, f"unpinned pip requirement {pin}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_commands_exist_in_the_cli(name):
    ins = instructions(DOCKER / name)
    entry = [json.loads(rest) for op, rest in ins if op == "ENTRYPOINT"]
    assert entry == [["roistream"]]
    cmd = [json.loads(rest) for op, rest in ins if op == "CMD"][-1]
    assert_parses(cmd)
    for op, rest in ins:
        if op == "RUN":
            for argv in roistream_argvs_in_shell(rest):
                assert_parses(argv)
        if op == "HEALTHCHECK":
            code = shlex.split(rest.split(" CMD ", 1)[1])
            assert code[:2] == ["python", "-c"]
            check_python_c(code[2])


def assert_cloud_serves_the_network(argv: list[str]) -> None:
    """A containerised cloud must listen beyond the container's loopback, and say so explicitly: the server
    refuses such a bind without TLS and client authentication unless --insecure is given."""
    from cloud.cli import serve_config

    config = serve_config(build_parser().parse_args(argv))
    assert config.host == "0.0.0.0" and config.metrics_host == "0.0.0.0"
    config.check_exposure()  # raises InsecureBindError: the container would exit at once


def test_cloud_image_command_starts_with_the_secure_defaults():
    cmd = [json.loads(rest) for op, rest in instructions(DOCKER / "cloud.Dockerfile") if op == "CMD"][-1]
    assert_cloud_serves_the_network(cmd)


def test_gpu_extra_matches_the_edge_image():
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    assert all("==" in req for req in extra)
    ort_pin = next(r for r in extra if r.startswith("onnxruntime-gpu")).split("==")[1]
    assert any(r.startswith("tensorrt") for r in extra)
    assert f'onnxruntime-gpu=={ort_pin}' in (DOCKER / "edge.Dockerfile").read_text()


def test_compose_runs_cloud_and_edge_on_the_sample_video():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"cloud", "edge"}
    for name, svc in services.items():
        build = svc["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == REPO and (context / build["dockerfile"]).is_file()
        assert re.search(r":\d", svc["image"]), "images are tagged with a version"
        assert svc["user"].split(":")[0] not in ("0", "root")
        hc = svc["healthcheck"]["test"]
        assert hc[0] == "CMD" and hc[1:3] == ["python", "-c"]
        check_python_c(hc[3])
        assert_parses(svc["command"])  # the images' entrypoint is `roistream`
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                host = (DOCKER / src).resolve()
                if host.name == "shared" and not host.exists():
                    pytest.skip(f"shared data folder {host} absent")
                assert host.exists(), f"{name} mounts {src}, which does not exist"
            else:
                assert src in compose["volumes"], f"named volume {src} is not declared"
    assert_cloud_serves_the_network(services["cloud"]["command"])
    assert all(port.startswith("127.0.0.1:") for port in services["cloud"]["ports"]), "published on loopback only"
    edge = services["edge"]
    assert edge["depends_on"]["cloud"]["condition"] == "service_healthy"
    args = build_parser().parse_args(edge["command"])
    assert args.source.startswith("/shared/") and args.cloud == "cloud:50051"
    assert args.insecure, "the cloud in compose speaks plaintext; the edge must dial it so explicitly"
    sample = (DOCKER / "../../shared").resolve() / args.source.removeprefix("/shared/")
    assert sample.is_file(), f"the sample video {sample} is missing"
    devices = edge["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_compose_scale_runs_three_nodes_on_the_shared_store_behind_envoy():
    """docker/compose.scale.yaml: three identical nodes on PostgreSQL + S3 + NATS, each command a valid
    `cloud serve` of the shared store; Envoy is the one published address and balances over all three."""
    from cloud.cli import serve_config

    compose = yaml.safe_load((DOCKER / "compose.scale.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "seaweedfs", "nats", "node1", "node2", "node3", "envoy"} == set(services)
    for name in ("postgres", "seaweedfs", "nats"):
        assert re.search(r":\d", services[name]["image"]) and services[name]["healthcheck"]["test"][0] == "CMD"
    for name in ("node1", "node2", "node3"):
        node = services[name]
        assert node["build"]["args"]["EXTRAS"] == "[scale]" and "ports" not in node
        assert_parses(node["command"])
        assert_cloud_serves_the_network(node["command"])
        config = serve_config(build_parser().parse_args(node["command"]))
        config.backends.validate()
        assert config.backends.distributed and config.events.startswith("nats://nats:")
        assert config.max_calls_per_peer == 0, "behind a proxy every call has the proxy's address"
        assert all(node["depends_on"][d]["condition"] == "service_healthy" for d in ("postgres", "seaweedfs", "nats"))
        check_python_c(node["healthcheck"]["test"][3])
    assert services["envoy"]["ports"] == ["127.0.0.1:50051:50051"]
    envoy = yaml.safe_load((DOCKER / "envoy.scale.yaml").read_text())
    [cluster] = envoy["static_resources"]["clusters"]
    hosts = [e["endpoint"]["address"]["socket_address"]["address"]
             for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert hosts == ["node1", "node2", "node3"] and "grpc_health_check" in cluster["health_checks"][0]
    assert "${EXTRAS}" in (DOCKER / "cloud.Dockerfile").read_text()
