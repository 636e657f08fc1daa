"""`python -m krill ...` is the `krill` command."""

from krill.cli.main import main

if __name__ == "__main__":
    main()
