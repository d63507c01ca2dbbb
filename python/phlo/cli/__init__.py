"""The `phlo` command. Each module registers its commands on the one group, `main`."""

from phlo.cli import init, maintain, refs, tables
from phlo.cli.app import main

__all__ = ["init", "main", "maintain", "refs", "tables"]

if __name__ == "__main__":
    main()
