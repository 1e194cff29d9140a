"""The long-running service: app wiring, lifecycle and signals, schedules, systemd, logging.

Owns: starting and stopping the watch side and the alert side around one database.
May not import Telethon (the client factory in `bot.clients` builds clients) nor run SQL
(storage does); never imports `bot.cli`.
"""
