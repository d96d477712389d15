"""First-run development settings: `python -m dimeconnect.envfile` (called by `make run`).

Writes what a development machine needs into `.env` when it is missing: DEBUG=True, a random
SECRET_KEY and a development FIELD_ENCRYPTION_KEYS key. Values already in the environment or in
`.env` are never replaced. Runs before Django is configured, so it imports nothing from it.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent


def read_keys(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            keys.add(line.split("=", 1)[0].removeprefix("export ").strip())
    return keys


def ensure(path: Path) -> list[str]:
    """Append missing development settings to `path`; returns the names it added."""
    present = read_keys(path) | set(os.environ)
    wanted = {
        "DEBUG": "True",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    added = {name: value for name, value in wanted.items() if name not in present}
    if added:
        with path.open("a") as handle:
            handle.write("\n# Written by `make run` for development; see .env.example.\n")
            for name, value in added.items():
                handle.write(f"{name}={value}\n")
        path.chmod(0o600)
    return list(added)


def main() -> int:
    path = Path(os.environ.get("DIMECONNECT_ENV_FILE") or BASE_DIR / ".env")
    added = ensure(path)
    if "FIELD_ENCRYPTION_KEYS" in added:
        print(
            f"Generated a development encryption key into {path} (FIELD_ENCRYPTION_KEYS). "
            "Keep it: the secrets in this database cannot be read without it."
        )
    for name in added:
        if name != "FIELD_ENCRYPTION_KEYS":
            print(f"Wrote {name} into {path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
