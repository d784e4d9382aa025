"""``python -m rws.cli``: the ``rws`` command without its console script.

Useful when the script's directory is not on ``PATH`` or to pick the interpreter explicitly.
"""

from rws.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
