"""The `phlo` command. Each module registers its commands on the one group, `main`."""

from phlo.cli import (
    catalog,
    dev,
    doctor,
    init,
    maintain,
    refs,
    runs,
    services,
    settings,
    status,
    tables,
    validate,
)
from phlo.cli.app import main

__all__ = [
    "catalog",
    "dev",
    "doctor",
    "init",
    "main",
    "maintain",
    "refs",
    "runs",
    "services",
    "settings",
    "status",
    "tables",
    "validate",
]

if __name__ == "__main__":
    main()
