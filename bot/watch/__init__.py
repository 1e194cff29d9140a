"""The user client's side: watcher, catch-up, polling, reconcile and metrics, media download.

Owns: every read from Telegram for channel posts. `telegram.py` is the edge that turns
Telethon messages into `storage.models.Post`; nothing Telethon leaves this folder.
May not import `bot.alerts`, `bot.commands`, `bot.service` or `bot.cli`, and runs no SQL itself.
"""
