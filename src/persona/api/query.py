"""Query parameters read into one pydantic model, for the hottest routes.

FastAPI resolves each declared query parameter through its dependency machinery, which costs
more than ranking a cached answer; here the query string goes to the model's validator in one
call. The model's fields are still published in the OpenAPI document (``query_parameters``),
and a bad value gets the same 422 problem as any other validation error.
"""

from __future__ import annotations

from functools import cache
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


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
