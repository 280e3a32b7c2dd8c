"""What `/codec/session` takes and answers: an API key in, who is signed in and until when out."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.models.apikeys import Role

# Keys this system makes are about 60 characters; a longer value cannot be one.
MAX_KEY_LENGTH = 200


class CodecLogin(BaseModel):
    """The API key to open a codec session with (viewer or above)."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(
        min_length=1, max_length=MAX_KEY_LENGTH, description="an API key, e.g. r2c_ab12cd_..."
    )


class CodecSessionInfo(BaseModel):
    """The codec session just opened (the session itself travels only in the HttpOnly cookie)."""

    key_name: str
    role: Role
    expires_at: datetime
