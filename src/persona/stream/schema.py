"""What clients send and read about webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["event", "segment", "decision", "erasure"]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        pattern=r"^https?://[^\s\x00-\x1f\x7f]+$",
        max_length=2048,
        description="Where the messages are posted (http or https).",
        examples=["https://example.com/hooks/persona"],
    )
    kinds: list[Kind] = Field(
        min_length=1,
        max_length=4,
        description="The message kinds it receives.",
        examples=[["segment"]],
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Signs each delivery (HMAC-SHA256); default: a new random secret.",
    )


class Webhook(BaseModel):
    webhook_id: str
    url: str
    kinds: list[str]
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(description="Shown once: check `Persona-Signature` with it.")


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class DeadLetter(BaseModel):
    message_id: str
    attempts: int
    failed_at: datetime
    error: str
    message: dict[str, object] = Field(description="The message as it was posted.")


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetter]
