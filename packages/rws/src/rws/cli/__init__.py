"""The ``rws`` umbrella command: one entry point for every installed rws package's commands.

The command itself knows no subcommands. Each distribution that has a command-line side
registers its subcommands in the ``rws.commands`` entry-point group, and ``rws`` finds them
at run time, so installing or uninstalling a package adds or removes its commands without a
new release of this one.

Plugin contract
---------------
A distribution adds a subcommand by declaring an entry point in the ``rws.commands`` group::

    [project.entry-points."rws.commands"]
    webhook = "rws.webhook.cli:main"

- The entry point's **name** is the subcommand (``rws webhook ...``). A name registered by
  two distributions is a conflict: ``rws`` reports both and runs neither.
- It points at a **callable** ``main(argv: list[str] | None = None) -> int``. ``rws NAME
  ARGS...`` calls it with ``ARGS`` as a new list and exits with the ``int`` it returns
  (``None`` counts as 0; a ``SystemExit`` it raises, as argparse does, is turned into that
  exit code). While it runs, ``sys.argv`` is ``["rws NAME", *ARGS]``, so argparse usage
  lines read right.
- Its **summary** in ``rws --help`` is the first line of the callable's docstring, or of its
  module's docstring when the callable has none.
- Only the chosen entry point is imported to run a command. ``rws --help`` imports them all
  to read their summaries; one that fails to import is listed as broken (with the error and
  the distribution to reinstall) instead of breaking the listing.

Modules: :mod:`rws.cli.discovery` (finding and loading entry points), :mod:`rws.cli.render`
(help and version text), :mod:`rws.cli.main` (argument dispatch, the console script).
"""
