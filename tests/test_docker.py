"""docker/ without a Docker engine: the compose file and Dockerfiles agree with the repository.

The Dockerfiles are read by a small parser (instructions, continuation lines, exec and shell
forms); every command an image or compose runs is resolved to `golf …`, `ray …` or
`python …` and checked against the real command-line interfaces: the `golf.commands` entry
points for golf and Ray's click CLI for ray, options included.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")
KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!"}
BUILTINS = {"set", "[", "test", "true", "false", "exit", "echo", "cd", "export"}
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "\n"}


# ------------------------------------------------------------------ Dockerfile parser


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case
    args: str  # the rest of the logical line, continuations joined

    def exec_form(self) -> list[str] | None:
        if self.args.startswith("["):
            try:
                value = json.loads(self.args)
            except json.JSONDecodeError:
                return None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        return None


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (index 0: the global ARGs before the first FROM)."""
    stages: list[list[Instruction]] = [[]]
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and logical):
            continue  # comments, and blank lines inside a continuation, are dropped
        if not line:
            continue
        if line.endswith("\\"):
            logical += line[:-1].rstrip() + " "
            continue
        logical += line
        name, _, args = logical.partition(" ")
        logical = ""
        instruction = Instruction(name.upper(), args.strip())
        if instruction.name == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    assert not logical, "the Dockerfile ends inside a continuation line"
    return stages


@dataclass(frozen=True)
class Image:
    path: Path
    stages: list[list[Instruction]]

    @property
    def final(self) -> list[Instruction]:
        return self.stages[-1]

    def all(self, name: str) -> list[Instruction]:
        return [i for stage in self.stages for i in stage if i.name == name]

    def last(self, name: str) -> Instruction | None:
        found = [i for i in self.final if i.name == name]
        return found[-1] if found else None

    def arg_default(self, arg: str) -> str | None:
        for i in self.all("ARG"):
            key, _, value = i.args.partition("=")
            if key == arg and value:
                return value
        return None


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words


# ------------------------------------------------------------------ shell and commands


def shell_commands(script: str) -> list[list[str]]:
    """Simple commands of a shell script, `exec` and keywords stripped, comments dropped
    (one command per line unless `;`, `&&`, `||` or `|` separate them on it)."""
    commands: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        commands.append([])
        for token in lexer:
            if token in SEPARATORS or set(token) <= set(";&|()"):
                commands.append([])
            elif not commands[-1] and token in KEYWORDS | {"exec"}:
                continue
            else:
                commands[-1].append(token)
    return [c for c in commands if c]


def argvs(form: list[str] | str) -> list[list[str]]:
    """What an ENTRYPOINT/CMD/HEALTHCHECK/compose command runs, as argument vectors."""
    if isinstance(form, str):
        return shell_commands(form)
    if len(form) >= 3 and form[0] in SHELLS and form[1] == "-c":
        return shell_commands(form[2])
    return [list(form)]


@cache
def golf_commands() -> Any:
    """A fresh `golf` built from the `golf.commands` entry points, as the real one is."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a callback makes typer build a group even for one command
        pass

    for ep in entry_points(group="golf.commands"):
        ep.load()(app)
    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    return group


def serve_command() -> Any:
    assert "serve" in golf_commands().commands, "`golf serve` is not a registered command"
    return golf_commands().commands["serve"]


def serve_option(name: str) -> Any:
    (param,) = [p for p in serve_command().params if p.name == name]
    return param


def default_port() -> int:
    port = serve_option("port").default
    assert isinstance(port, int)
    return port


def options(command: Any) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def service_requirements() -> list[Requirement]:
    """What the images install: the `service` extra (engine + FastAPI + Ray)."""
    return [Requirement(d) for d in project()["optional-dependencies"]["service"]]


def check_argv(argv: list[str]) -> tuple[str, ...]:
    """Fail unless argv runs a real command with real options; returns its command path."""
    program, *rest = argv
    if program in BUILTINS or program == '"$@"' or program == "$@":
        return (program,)
    if program == "golf":
        assert "golf" in project()["scripts"], "`golf` is not a console script of the project"
        group = golf_commands()
    elif program == "ray":
        dependencies = {r.name for r in service_requirements()}
        assert "ray" in dependencies, "`ray` runs in an image but is not in the service extra"
        scripts = {ep.name for ep in distribution("ray").entry_points}
        assert "ray" in scripts
        from ray.scripts.scripts import cli

        group = cli
    elif program in ("python", "python3"):
        if rest[:1] == ["-c"]:
            compile(rest[1], "<healthcheck>", "exec")
        return (program,)
    else:
        raise AssertionError(f"{argv}: unknown command {program!r}")
    assert rest and hasattr(group, "commands"), f"{argv}: no subcommand"
    sub, *args = rest
    assert sub in group.commands, f"{argv}: `{program} {sub}` is not a command"
    command = group.commands[sub]
    for arg in args:
        if arg.startswith("--"):
            opt = arg.partition("=")[0]
            assert opt in options(command), f"{argv}: `{program} {sub}` has no option {opt}"
    return (program, sub)


def option_value(argv: list[str], opt: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == opt:
            return argv[i + 1]
        if arg.startswith(opt + "="):
            return arg.partition("=")[2]
    return None


# ------------------------------------------------------------------ fixtures


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def context_of(service: dict) -> Path:
    return (COMPOSE.parent / service["build"]["context"]).resolve()


def image_of(service: dict) -> Image:
    path = context_of(service) / service["build"]["dockerfile"]
    return Image(path, parse_dockerfile(path.read_text()))


def images() -> dict[str, tuple[Image, Path]]:
    """Each Dockerfile compose builds, with its build context."""
    out = {}
    for service in services().values():
        if "build" in service:
            image = image_of(service)
            out[image.path.name] = (image, context_of(service))
    return out


IMAGES = ["service.Dockerfile", "worker.Dockerfile"]


def interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` / `${VAR-default}` with VAR unset; `${VAR}` must not be."""

    def default(m: re.Match) -> str:
        assert m.group(2) is not None, f"{value}: ${{{m.group(1)}}} has no default"
        return m.group(3)

    return re.sub(r"\$\{(\w+)(:?-(.*?))?\}", default, value)


def dockerignored(context: Path, relative: str) -> bool:
    """Docker's .dockerignore rules: the last pattern matching the path or a parent wins."""
    ignore = context / ".dockerignore"
    patterns = [
        line.strip()
        for line in (ignore.read_text().splitlines() if ignore.exists() else [])
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        globs = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(p, g) for p in prefixes for g in globs) or (
            pattern.startswith("**/")
            and any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        ):
            excluded = not negated
    return excluded


# ------------------------------------------------------------------ tests: images


def test_compose_builds_both_images() -> None:
    assert sorted(images()) == IMAGES
    for image, context in images().values():
        assert context == ROOT, f"{image.path.name}: build context is not the repository"


@pytest.mark.parametrize("name", IMAGES)
def test_copied_sources_exist_in_the_context(name: str) -> None:
    image, context = images()[name]
    copies = image.all("COPY") + image.all("ADD")
    assert copies
    for copy in copies:
        flags, words = split_flags(copy.args)
        if "from" in flags:
            continue  # from another stage or image
        *sources, _destination = words
        assert sources, f"{copy}: no source"
        for source in sources:
            assert (context / source).exists(), f"{name}: COPY source {source} does not exist"
            assert not dockerignored(context, source), f"{name}: {source} is .dockerignored"


def test_dockerignore_keeps_out_environments_and_secrets() -> None:
    for path in (".venv/bin/python", ".git/config", "build/x", "docker/keys.txt", "a/b.pyc"):
        assert dockerignored(ROOT, path), f"{path} would be sent to the Docker daemon"
    assert not dockerignored(ROOT, "golf/cli.py")


@pytest.mark.parametrize("name", IMAGES)
def test_images_run_as_a_non_root_user(name: str) -> None:
    image, _ = images()[name]
    user = image.last("USER")
    assert user is not None, f"{name}: the final stage has no USER"
    assert user.args.split(":")[0] not in ("root", "0"), f"{name}: runs as root"
    after = image.final[image.final.index(user) :]
    assert not any(i.name == "USER" and i.args.startswith(("root", "0")) for i in after)
    for service in services().values():
        assert str(service.get("user", "golf")).split(":")[0] not in ("root", "0")


@pytest.mark.parametrize("name", IMAGES)
def test_images_have_a_healthcheck_that_runs_real_commands(name: str) -> None:
    image, _ = images()[name]
    check = image.last("HEALTHCHECK")
    assert check is not None and check.args.upper() != "NONE", f"{name}: no HEALTHCHECK"
    _, words = split_flags(check.args)
    assert words[0] == "CMD", f"{name}: HEALTHCHECK without CMD"
    form = check.args[check.args.index("CMD") + 3 :].strip()
    exec_form = Instruction("CMD", form).exec_form()
    for argv in argvs(exec_form if exec_form is not None else form):
        check_argv(argv)


def entrypoint_argvs(image: Image, context: Path) -> list[list[str]]:
    """ENTRYPOINT and CMD of the final stage combined; a copied entrypoint script is read
    from the repository and its `"$@"` replaced by CMD."""
    entry, cmd = image.last("ENTRYPOINT"), image.last("CMD")
    assert entry is not None or cmd is not None, f"{image.path.name}: runs nothing"

    def form(i: Instruction | None) -> list[str] | str:
        if i is None:
            return []
        return i.exec_form() if i.exec_form() is not None else i.args

    cmd_form = form(cmd)
    entry_form = form(entry)
    if not entry_form:
        return argvs(cmd_form)
    if isinstance(entry_form, list) and len(entry_form) == 1:
        scripts = {}
        for copy in image.final:
            if copy.name == "COPY":
                flags, words = split_flags(copy.args)
                if "from" not in flags and len(words) == 2:
                    scripts[words[1]] = context / words[0]
        target = entry_form[0]
        found = [src for dst, src in scripts.items() if dst == target or dst.endswith("/" + target)]
        if found:
            assert isinstance(cmd_form, list), "CMD must be exec form with a script entrypoint"
            out = []
            for argv in shell_commands(found[0].read_text()):
                if argv[0] in ('"$@"', "$@"):
                    argv = cmd_form + argv[1:]
                out.append(argv)
            return out
    assert not cmd_form or isinstance(entry_form, list), "shell-form ENTRYPOINT ignores CMD"
    return argvs(entry_form + (cmd_form if isinstance(cmd_form, list) else []))


def test_service_image_runs_golf_serve() -> None:
    image, context = images()["service.Dockerfile"]
    commands = entrypoint_argvs(image, context)
    ran = [check_argv(argv) for argv in commands]
    assert ("golf", "serve") in ran, "the service image does not run `golf serve`"
    serves = [argv for argv in commands if argv[:2] == ["golf", "serve"]]
    for serve in serves:
        assert option_value(serve, "--host") == "0.0.0.0", "the service listens on loopback"
        assert int(option_value(serve, "--port") or default_port()) == default_port()
    # Joining the Ray cluster named by RAY_ADDRESS (compose sets it to the head's address).
    assert any(option_value(s, "--ray-address") == "${RAY_ADDRESS}" for s in serves)


def test_worker_image_starts_a_ray_node() -> None:
    image, context = images()["worker.Dockerfile"]
    commands = entrypoint_argvs(image, context)
    ran = [check_argv(argv) for argv in commands]
    assert ("ray", "start") in ran
    (start,) = [argv for argv in commands if argv[:2] == ["ray", "start"]]
    assert "--block" in start, "without --block the container exits after `ray start`"
    assert option_value(start, "--address"), "the worker joins no Ray head"
    assert option_value(start, "--num-gpus"), "the worker does not offer its GPUs"
    build_args = {i.args.partition("=")[0] for i in image.all("ARG")}
    assert "FLASH_ATTN" in build_args


def test_ports_agree_with_golf_serve_default() -> None:
    port = default_port()
    image, _ = images()["service.Dockerfile"]
    exposed = {int(p.split("/")[0]) for i in image.all("EXPOSE") for p in i.args.split()}
    assert exposed == {port}, f"EXPOSE {exposed} but `golf serve` listens on {port}"
    healthcheck = image.last("HEALTHCHECK")
    assert healthcheck is not None and f":{port}/healthz" in healthcheck.args
    assert "ports" not in services()["service"], "the service is reached through the proxy only"
    assert [str(p) for p in services()["service"]["expose"]] == [str(port)]


def test_python_and_ray_agree_across_images() -> None:
    """Ray refuses a driver whose Ray or Python (down to the patch) differs from the cluster's."""
    versions = {name: image.arg_default("PYTHON_VERSION") for name, (image, _) in images().items()}
    assert None not in versions.values() and len(set(versions.values())) == 1, versions
    pins = [
        Requirement(line)
        for line in (DOCKER / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    (ray,) = [r for r in pins if r.name == "ray"]
    (pinned,) = ray.specifier
    assert pinned.operator == "==", "ray must be pinned exactly"
    (wanted,) = [r for r in service_requirements() if r.name == "ray"]
    assert wanted.specifier.contains(pinned.version), f"ray {pinned.version} breaks {wanted}"
    for name, (image, _) in images().items():
        text = " ".join(i.args for i in image.all("ENV"))
        assert "constraints.txt" in text, f"{name} does not install under docker/constraints.txt"


# ------------------------------------------------------------------ tests: compose


def depends_on(service: dict) -> set[str]:
    deps = service.get("depends_on", [])
    return set(deps) if isinstance(deps, list) else set(deps)


def test_service_and_workers_join_the_ray_head() -> None:
    s = services()
    head = s["ray-head"]
    (start,) = [argv for argv in argvs(head["entrypoint"] + head.get("command", []))]
    assert check_argv(start) == ("ray", "start") and "--head" in start
    head_port = option_value(start, "--port") or "6379"
    check_argv(head["healthcheck"]["test"][1:])  # the image's own check is the service's
    for name, var in (("service", "RAY_ADDRESS"), ("worker", "RAY_HEAD")):
        assert "ray-head" in depends_on(s[name]), f"{name} does not depend on ray-head"
        assert s[name]["environment"][var] == f"ray-head:{head_port}", f"{name}: {var}"


def volume_mounts(service: dict) -> list[tuple[str, str, str]]:
    """(type, source, target) of each mount, short syntax included, defaults interpolated."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target, *_ = interpolate(v).split(":")
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        else:
            kind, source, target = v["type"], interpolate(v.get("source", "")), v["target"]
        out.append((kind, source, target))
    return out


def test_volumes_are_declared_and_cover_serve_paths() -> None:
    c = compose()
    declared = set(c.get("volumes") or {})
    used = set()
    for name, service in c["services"].items():
        for kind, source, _ in volume_mounts(service):
            if kind == "volume":
                assert source in declared, f"{name}: volume {source!r} is not declared"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"
    # Every path `golf serve` is given in the image is mounted from outside.
    image, context = images()["service.Dockerfile"]
    targets = {target for _, _, target in volume_mounts(c["services"]["service"])}
    for serve in [a for a in entrypoint_argvs(image, context) if a[:2] == ["golf", "serve"]]:
        for opt in ("--data-root", "--state-dir", "--api-keys"):
            assert option_value(serve, opt) in targets, f"nothing is mounted on {opt}"
    assert "/state/artifacts" in targets, "artifacts have no volume"


def test_workers_reserve_gpus() -> None:
    worker = services()["worker"]
    deploy = worker["deploy"]
    devices = deploy["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia"
        and "gpu" in d.get("capabilities", [])
        and (d.get("count") == "all" or int(d.get("count", 0)) >= 1 or d.get("device_ids"))
        for d in devices
    ), "the worker reserves no NVIDIA GPU"
    assert int(interpolate(str(deploy["replicas"]))) >= 1


# ------------------------------------------------------------------ tests: reverse proxy


NGINX = DOCKER / "nginx.conf"


def parse_nginx(text: str) -> list[tuple[str, list[str], list | None]]:
    """nginx's configuration syntax: `name args;` and `name args { ... }`, `#` comments,
    quoted strings. Returns (name, args, children or None) in order."""
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))

    def block(i: int) -> tuple[list, int]:
        out: list = []
        words: list[str] = []
        while i < len(tokens):
            token = tokens[i]
            if token == ";":
                assert words, "empty directive"
                out.append((words[0], words[1:], None))
                words = []
            elif token == "{":
                children, i = block(i + 1)
                out.append((words[0], words[1:], children))
                words = []
            elif token == "}":
                assert not words, f"directive {words} not closed by ;"
                return out, i
            else:
                words.append(token.strip("\"'"))
            i += 1
        assert not words, f"directive {words} not closed"
        return out, i

    tree, end = block(0)
    assert end == len(tokens), "unbalanced }"
    return tree


def directives(tree: list, name: str) -> list[tuple[list[str], list | None]]:
    return [(args, children) for n, args, children in tree if n == name]


def one(tree: list, name: str) -> list[str]:
    (found,) = directives(tree, name)
    return found[0]


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG])?", value).groups()
    return int(number) * {None: 1, "k": 2**10, "m": 2**20, "g": 2**30}[(unit or "").lower() or None]


def test_compose_puts_a_reverse_proxy_in_front_of_the_service() -> None:
    proxy = services()["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "service" in depends_on(proxy)
    (mount,) = [m for m in volume_mounts(proxy) if m[2] == "/etc/nginx/nginx.conf"]
    assert mount[0] == "bind" and (COMPOSE.parent / mount[1]).resolve() == NGINX
    (published,) = [str(p) for p in proxy["ports"]]
    listen = one(directives(one_http(), "server")[0][1], "listen")
    assert published.rsplit(":", 1)[1] == listen[0]
    (upstream,) = directives(one_http(), "upstream")
    assert one(upstream[1], "server") == [f"service:{default_port()}"]


def one_http() -> list:
    tree = parse_nginx(NGINX.read_text())
    ((_, http),) = directives(tree, "http")
    return http


def test_the_proxy_bounds_heads_bodies_and_connections() -> None:
    """N5 (issue 14): deadlines for request heads and bodies, a body cap that fits the
    service's largest upload and no more, per-client connection and request limits."""
    from service.settings import Settings
    from service.uploads import MULTIPART_SLACK

    http = one_http()
    settings = Settings()
    assert seconds(one(http, "client_header_timeout")[0]) <= settings.header_timeout_s
    assert seconds(one(http, "client_body_timeout")[0]) <= 60
    assert seconds(one(http, "keepalive_timeout")[0]) <= 60
    cap = size(one(http, "client_max_body_size")[0])
    assert settings.max_upload_bytes + MULTIPART_SLACK <= cap <= 2 * settings.max_upload_bytes
    assert size(one(http, "large_client_header_buffers")[1]) <= 64 * 2**10
    zones = {args[1].split("=")[1].split(":")[0] for args, _ in directives(http, "limit_conn_zone")}
    (server,) = [children for _, children in directives(http, "server")]
    (conn,) = directives(server, "limit_conn")
    assert conn[0][0] in zones and 0 < int(conn[0][1]) <= 256
    assert directives(server, "limit_req")
    assert one(server, "proxy_request_buffering") == ["off"]  # the service's caps apply
    # Event streams pass through unbuffered, with a read timeout above the keep-alive.
    (streams,) = [
        children for args, children in directives(server, "location") if "events" in args[-1]
    ]
    assert re.fullmatch(args_of(server, "events")[-1], "/v1/jobs/j_0123/events")
    assert re.fullmatch(args_of(server, "events")[-1], "/v1/jobs/j_0123/windows.ndjson")
    assert one(streams, "proxy_buffering") == ["off"]
    from service.events import KEEPALIVE_S

    assert seconds(one(streams, "proxy_read_timeout")[0]) > KEEPALIVE_S


def args_of(server: list, fragment: str) -> list[str]:
    (args,) = [args for args, _ in directives(server, "location") if fragment in args[-1]]
    return args
