"""Shared by every tab: turning the library's errors into messages a person reads, and who is asking
(the owner of jobs and fine-tuned models)."""
from __future__ import annotations

import functools
import hashlib
import logging
import re

import gradio as gr

log = logging.getLogger("aigc.demo")

TOKEN_RE = re.compile(r"^[0-9a-f]{32,128}$")     # a browser's owner token: at least 128 random bits, hex


def friendly(fn):
    """Turn the library's ValueErrors into gr.Error (shown to the person, returned by the API)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as e:    # RecipeError, ImageInputError, CheckpointError too
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:  # noqa: BLE001 - the server must keep serving; the person gets a reason
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(f"internal error ({type(e).__name__}); the server is still running",
                           print_exception=False) from None
    return wrapper


def owner_id(token=None, request: gr.Request | None = None) -> str:
    """Who owns what this request creates: the logged-in user when the app runs with auth, else the
    browser's owner token (kept in BrowserState, so a reload keeps it), else the session (a
    gradio_client.Client owns what it starts). Tokens are stored only as a hash."""
    user = getattr(request, "username", None) if request is not None else None
    if user:
        return "user:" + str(user)[:120]
    if isinstance(token, str) and TOKEN_RE.match(token):
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    session = getattr(request, "session_hash", None) if request is not None else None
    if session:
        return "session:" + hashlib.sha256(str(session).encode()).hexdigest()[:32]
    return "local"
