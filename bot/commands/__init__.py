"""Bot commands, one module per topic, all entering through `boundary.Dispatcher`."""

from bot.commands.base import Caller, Reply, Services, UsageError
from bot.commands.boundary import Dispatcher, bot_commands

__all__ = ["Caller", "Dispatcher", "Reply", "Services", "UsageError", "bot_commands"]
