"""Staff sign-in: argon2 password hashes, server-side sessions behind a random cookie token, CSRF tokens.

Never stores or logs a password or a session token; the database keeps only their hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.errors import AccessDenied, ConfigError
from bot.store import Store

log = logging.getLogger(__name__)

ROLES = ("editor", "clinician", "admin")
SESSION_COOKIE = "clinicbot_staff"
CSRF_COOKIE = "clinicbot_csrf"
MIN_PASSWORD_CHARS = 12
THROTTLE_WINDOW = dt.timedelta(minutes=15)  # sign-in attempts are limited per account and per address within it

# What each role may do. Only clinicians approve: they keep the final word on every explainer.
PERMISSIONS: dict[str, frozenset[str]] = {
    "editor": frozenset({"edit"}),
    "clinician": frozenset({"edit", "review", "audit"}),
    "admin": frozenset({"edit", "audit", "users"}),
}

_hasher = PasswordHasher()
# Verifying against this when the email is unknown makes a wrong email cost as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class StaffUser:
    email: str
    role: str

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def require(self, permission: str, doing: str) -> None:
        if not self.can(permission):
            raise AccessDenied(f"your role ({self.role}) cannot {doing}; ask a clinician or an admin")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")


class Auth:
    def __init__(self, store: Store, session_hours: float = 8.0):
        self.store = store
        self.lifetime = dt.timedelta(hours=session_hours)

    def add_user(self, email: str, password: str, role: str, actor: str) -> None:
        email = email.strip().lower()
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
        if "@" not in email:
            raise ConfigError("give the staff member's email address as their sign-in name")
        check_new_password(password)
        self.store.add_user(email, _hasher.hash(password), role, actor=actor)

    def sign_in(self, email: str, password: str) -> str | None:
        """A new session token when the password is right, else None. Every attempt is audited."""
        email = email.strip().lower()[:128]
        user = self.store.user(email)
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            self.store.audit(actor=email, action="sign-in refused", count=1)
            return None
        if user is None:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            self.store.set_password_hash(user.id, _hasher.hash(password))
        token = secrets.token_urlsafe(32)
        self.store.open_staff_session(_token_hash(token), user.id, self.lifetime)
        self.store.audit(actor=email, action="sign in", count=1)
        return token

    def user_for(self, token: str | None) -> StaffUser | None:
        if not token:
            return None
        user = self.store.staff_session_user(_token_hash(token))
        return StaffUser(user.email, user.role) if user else None

    def sign_out(self, token: str | None) -> None:
        if not token:
            return
        user = self.user_for(token)
        self.store.close_staff_session(_token_hash(token))
        if user:
            self.store.audit(actor=user.email, action="sign out", count=1)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(cookie_token: str | None, form_token: str | None) -> bool:
    """Double-submit check: the form must echo the token that only our own page could read from the cookie."""
    return bool(cookie_token and form_token) and hmac.compare_digest(str(cookie_token), str(form_token))
