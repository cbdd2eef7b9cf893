"""Tencent RTC Room Engine: UserSig signing, the HTTP client, error codes and a local emulator."""
