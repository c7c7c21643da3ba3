"""Bearer API keys mapped to owners; an owner sees only their own jobs, admins see all.

Keys come from a file of `KEY OWNER [admin]` lines (`#` comments). Without one, the
service makes a random admin key once, keeps it in STATE_DIR/dev-api-keys (same format,
so it can be passed back with --api-keys) and the CLI prints it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from golf.spec.errors import ConfigError
from service.errors import http_error

DEV_KEYS_FILE = "dev-api-keys"


@dataclass(frozen=True)
class Caller:
    owner: str
    admin: bool = False

    def can_see(self, owner: str) -> bool:
        return self.admin or owner == self.owner


@dataclass(frozen=True)
class ApiKeys:
    keys: dict[str, Caller]
    dev_file: Path | None = None
    """Set when the keys are the generated development key."""

    @classmethod
    def load(cls, path: Path) -> ApiKeys:
        try:
            # utf-8-sig: a byte-order mark must not become part of the first key.
            lines = path.read_text("utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read API keys file {path}: {e}") from None
        keys: dict[str, Caller] = {}
        for number, line in enumerate(lines, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) not in (2, 3) or fields[2:] not in ([], ["admin"]):
                raise ConfigError(f"{path}:{number}: expected `KEY OWNER [admin]`")
            if fields[0] in keys:
                raise ConfigError(f"{path}:{number}: key listed twice")
            keys[fields[0]] = Caller(fields[1], admin=len(fields) == 3)
        if not keys:
            raise ConfigError(f"{path} lists no API keys")
        return cls(keys)

    @classmethod
    def development(cls, state_dir: Path) -> ApiKeys:
        """The generated admin key for owner `dev`, made on first use and then reused."""
        path = state_dir / DEV_KEYS_FILE
        if not path.is_file():
            state_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{secrets.token_urlsafe(24)} dev admin\n", "utf-8")
            path.chmod(0o600)
        return cls(cls.load(path).keys, dev_file=path)

    def lookup(self, key: str) -> Caller | None:
        return self.keys.get(key)


_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer KEY`.")


def require_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The owner behind the request's bearer key; 401 when it is missing or unknown."""
    if credentials is None:
        raise _unauthorized("missing API key: send `Authorization: Bearer KEY`")
    caller = request.app.state.golf.keys.lookup(credentials.credentials)
    if caller is None:
        raise _unauthorized("unknown API key")
    return caller


def _unauthorized(detail: str) -> Exception:
    error = http_error(401, detail)
    error.headers = {"WWW-Authenticate": "Bearer"}
    return error


CallerDep = Annotated[Caller, Depends(require_caller)]
