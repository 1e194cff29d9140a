"""The `chanwatch` command line: one module per subcommand, parsed in `main.py`.

Owns: argument parsing, reading files the user names, printing results and exit codes.
May import every other part of `bot`; nothing imports `bot.cli` but `bot.__main__`
and the console script. Talks to Telegram only through `demo` (the simulator) and
the client factory.
"""

from bot.cli.parser import main

__all__ = ["main"]
