"""The room's one router: the auto-responder's rules and the saved messages."""

from __future__ import annotations

from fastapi import APIRouter

from webchat.web import rules, snippets

router = APIRouter()
router.include_router(rules.router)
router.include_router(snippets.router)
