"""Pure detection: text analysis, keyword rules and the captured-soldier claim detector."""

from bot.detection.text import Analysis, Sentence, Token, analyze, normalize

__all__ = ["Analysis", "Sentence", "Token", "analyze", "normalize"]
