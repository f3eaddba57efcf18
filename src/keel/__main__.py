"""`python -m keel`: the same as the `keel` command."""

from keel.cli import main

if __name__ == "__main__":
    main()
