"""Accounts that hold approval power: login throttling (django-axes) and a second factor
(TOTP, passkeys and recovery codes through django-otp). See docs/security.md."""
