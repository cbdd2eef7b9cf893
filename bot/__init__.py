"""roombot: a Slack chat-ops bot for Tencent RTC Room Engine rooms."""

__version__ = "0.1.0"
