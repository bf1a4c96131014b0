"""Query parameters and JSON bodies read into one pydantic model, for the hottest routes.

FastAPI resolves each declared query parameter through its dependency machinery, which costs
more than ranking a cached answer; here the query string goes to the model's validator in one
call. A body read by the endpoint itself is validated after the key check, so a caller without
a key learns nothing about the body's shape. The models are still published in the OpenAPI
document (``query_parameters``, ``json_body``), and a bad value gets the same 422 problem as
any other validation error.
"""

from __future__ import annotations

from functools import cache
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from persona.errors import MalformedJsonError

M = TypeVar("M", bound=BaseModel)

MAX_ROW_ID = 2**31 - 1
"""The greatest id of an auto-numbered row (quarantine, audit) in every store (PostgreSQL's
``integer`` column; SQLite's holds more): the bound of id parameters, which a larger number
would make fail in the store."""


def parse_query(model: type[M], request: Request) -> M:
    """``model`` from the request's query string; list fields take repeated parameters."""
    params = request.query_params
    values: dict[str, Any] = {}
    for name, repeated in _fields(model):
        if name in params:
            values[name] = params.getlist(name) if repeated else params[name]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def parse_json(body: bytes) -> Any:
    """The JSON document of a body; 400 ``malformed_json`` when it is not one."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJsonError(f"the body is not valid JSON ({exc})") from None


async def parse_body(model: type[M], request: Request) -> M:
    """``model`` from the request's JSON body (400 when malformed, 422 when invalid)."""
    document = parse_json(await request.body())
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


BODY_MODELS: dict[str, type[BaseModel]] = {}
"""Models of bodies read by ``parse_body``, added to the OpenAPI document's components."""


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model``."""
    BODY_MODELS[model.__name__] = model
    reference = {"$ref": f"#/components/schemas/{model.__name__}"}
    content = {"application/json": {"schema": reference}}
    return {"requestBody": {"required": True, "content": content}}


def body_schemas() -> dict[str, Any]:
    """The component schemas of ``BODY_MODELS`` and the models they refer to."""
    schemas: dict[str, Any] = {}
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return schemas


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model``'s fields as optional query parameters."""
    schema = model.model_json_schema()
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", ()),
            "description": prop.get("description", ""),
            "schema": {k: v for k, v in prop.items() if k != "description"},
        }
        for name, prop in schema["properties"].items()
    ]
    return {"parameters": parameters}


@cache
def _fields(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """Each field's name, and whether it is a list (a parameter that may repeat)."""
    return tuple((name, _is_list(f.annotation)) for name, f in model.model_fields.items())


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is list:
        return True
    if origin in (Union, UnionType):
        return any(_is_list(argument) for argument in get_args(annotation))
    return False
