"""The alert side: who gets what (`policy`, `audience`), formatting, the notifier, the bot client.

Owns: planning alerts, rendering them, delivering the outbox within Telegram's limits
(`ratelimit`), the daily digest, and the analysts' bot client (`bot_client`, `alertbot`,
the only modules here that import Telethon). May not import `bot.watch`, `bot.service`
or `bot.cli`, and runs no SQL itself.
"""
