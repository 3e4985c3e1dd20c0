"""Finding: docker-compose.yml shipped `shop:shop` database credentials and
published web on all interfaces; the image ran as root.

Docker is not available to the tests: docker-compose.yml is read as Compose reads
it (YAML, then `${VAR}`, `${VAR:-default}`, `${VAR:?error}` interpolation from .env),
and the Dockerfile's instructions are checked in order."""
from __future__ import annotations

import re

import pytest
import yaml

from tests.processes import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of one value (strings in lists and mappings too)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        current = env.get(name)
        unset = current is None or (current == "" and operator and operator.startswith(":"))
        if operator in ("?", ":?") and unset:
            raise MissingVariable(f"{name}: {argument}")
        if operator in ("-", ":-") and unset:
            return argument
        return current or ""

    return _VARIABLE.sub(replace, value)


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def filled(**overrides: str) -> dict[str, str]:
    """.env.example with its required secrets filled in, as an operator would."""
    return {**env_example(), "POSTGRES_PASSWORD": "pw-" + "x" * 29, "SECRET_KEY": "k" * 43,
            "ADMIN_API_TOKEN": "ops:" + "t" * 43, **overrides}


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "SECRET_KEY", "ADMIN_API_TOKEN"])
def test_compose_refuses_to_start_without_each_secret(secret):
    with pytest.raises(MissingVariable, match=secret):
        interpolate(COMPOSE, filled(**{secret: ""}))
    with pytest.raises(MissingVariable):
        interpolate(COMPOSE, {})


def test_env_example_holds_no_working_password():
    example = env_example()
    assert example["POSTGRES_PASSWORD"] == example["SECRET_KEY"] == example["ADMIN_API_TOKEN"] == ""
    with pytest.raises(MissingVariable):
        interpolate(COMPOSE, example)  # copying it unchanged is not enough to start


def test_no_credentials_are_written_in_compose():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "shop:shop@" not in text
    resolved = interpolate(COMPOSE, filled())
    assert resolved["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == filled()["POSTGRES_PASSWORD"]
    assert f":{filled()['POSTGRES_PASSWORD']}@postgres" in resolved["x-app-env"]["DATABASE_URL"]
    for service in ("web", "worker", "beat"):
        assert resolved["services"][service]["environment"]["SECRET_KEY"] == "k" * 43
        # the status page is on in the documented stack (issue 21)
        assert resolved["services"][service]["environment"]["ADMIN_API_TOKEN"] == "ops:" + "t" * 43


def test_only_web_publishes_a_port_and_on_loopback_unless_told():
    resolved = interpolate(COMPOSE, filled())
    published = {name: service.get("ports", []) for name, service in resolved["services"].items()
                 if "profiles" not in service}  # the stack `docker compose up` starts
    assert {name for name, ports in published.items() if ports} == {"web"}
    optional = [port for service in resolved["services"].values() if "profiles" in service
                for port in service.get("ports", [])]  # Prometheus and Grafana (--profile monitoring)
    assert optional and all(port.startswith("127.0.0.1:") for port in optional)
    assert published["web"] == ["127.0.0.1:8000:8000"]
    told = interpolate(COMPOSE, filled(WEB_BIND="0.0.0.0", WEB_PORT="80"))
    assert told["services"]["web"]["ports"] == ["0.0.0.0:80:8000"]


def test_the_health_check_host_is_trusted():
    resolved = interpolate(COMPOSE, filled(TRUSTED_HOSTS="shop.example.com"))
    hosts = resolved["services"]["web"]["environment"]["TRUSTED_HOSTS"].split(",")
    assert hosts == ["127.0.0.1", "web", "shop.example.com"]  # web: the Host Prometheus scrapes it by
    assert "http://127.0.0.1:8000/health" in " ".join(resolved["services"]["web"]["healthcheck"]["test"])


def test_secrets_never_reach_the_image_or_git():
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_image_runs_as_an_unprivileged_user():
    instructions = [line.split(None, 1) for line in (ROOT / "Dockerfile").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    keywords = [keyword.upper() for keyword, *_ in instructions]
    users = [rest.strip() for keyword, *rest in instructions if keyword.upper() == "USER" for rest in rest]
    assert users, "the Dockerfile sets no USER: the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Installing needs root; serving does not: USER comes after the last RUN, before CMD.
    last_run = max(i for i, keyword in enumerate(keywords) if keyword == "RUN")
    assert last_run < keywords.index("USER") < keywords.index("CMD")
