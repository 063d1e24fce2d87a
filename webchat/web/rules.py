"""REST for the auto-responder's rules: list, create, replace, change, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from webchat.room.autoreply import AutoReply
from webchat.room.responder import RuleError
from webchat.web.runtime import runtime

router = APIRouter(prefix="/api/rules", tags=["auto-responder"])

Answers = dict[int | str, dict[str, Any]]
NOT_FOUND: Answers = {404: {"description": "no rule has this id"}}
INVALID: Answers = {
    422: {"description": "match and every both or neither, a bad regex, every under 0.5"}
}
BOTH = NOT_FOUND | INVALID


class RuleBody(BaseModel):
    match: str | None = Field(None, description="a regular expression searched in each line")
    every: float | None = Field(None, description="or: seconds between sends, per connection")
    reply: str = Field(description="what to send; \\1 and \\g<name> from the match, and "
                       "{{counter}} {{time}} {{unixtime}} {{random}} {{peer}}")  # fmt: skip
    peer: str | None = Field(None, description="only this peer; null for every peer")
    enabled: bool = True


class RulePatch(BaseModel):
    match: str | None = None
    every: float | None = None
    reply: str | None = None
    peer: str | None = None
    enabled: bool | None = None


def auto(request: Request) -> AutoReply:
    rt = runtime(request.app)
    assert rt.auto is not None
    return rt.auto


async def put(request: Request, fields: dict[str, Any], rule_id: int | None) -> dict[str, Any]:
    try:
        return (await auto(request).put(fields, rule_id)).public()
    except RuleError as exc:
        raise HTTPException(422, str(exc)) from None


async def known(request: Request, rule_id: int) -> dict[str, Any]:
    autoreply = auto(request)
    await autoreply.fresh()
    rule = autoreply.responder.rules.get(rule_id)
    if rule is None:
        raise HTTPException(404, f"no rule {rule_id}; GET /api/rules lists them")
    return rule.public()


@router.get("", summary="The rules, with their hit counts")
async def list_rules(request: Request) -> dict[str, Any]:
    autoreply = auto(request)
    await autoreply.fresh()
    return {"rules": [rule.public() for rule in autoreply.responder.rules.values()]}


@router.post("", status_code=201, summary="Add a rule", responses=INVALID)
async def create_rule(request: Request, body: RuleBody) -> dict[str, Any]:
    await auto(request).fresh()
    return await put(request, body.model_dump(), None)


@router.put("/{rule_id}", summary="Replace a rule", responses=BOTH)
async def replace_rule(request: Request, rule_id: int, body: RuleBody) -> dict[str, Any]:
    await known(request, rule_id)
    return await put(request, body.model_dump(), rule_id)


@router.patch("/{rule_id}", summary="Change some fields of a rule", responses=BOTH)
async def change_rule(request: Request, rule_id: int, body: RulePatch) -> dict[str, Any]:
    fields = await known(request, rule_id)
    fields.update(body.model_dump(exclude_unset=True))
    for computed in ("id", "hits"):
        fields.pop(computed)
    return await put(request, fields, rule_id)


@router.delete("/{rule_id}", status_code=204, summary="Delete a rule", responses=NOT_FOUND)
async def delete_rule(request: Request, rule_id: int) -> Response:
    await known(request, rule_id)
    await auto(request).remove(rule_id)
    return Response(status_code=204)
