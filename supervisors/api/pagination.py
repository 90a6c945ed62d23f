"""Limit/offset pages for the API's lists, the answer still a plain JSON array.

The lists across supervisors grow with the fleet; a page keeps each answer
bounded. The body stays the array clients already read; how many there are in
all is in ``X-Total-Count``, and ``Link: <...>; rel="next"`` is there while
more remain, so a client pages on without counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from supervisors.services.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class PageParamsSerializer(serializers.Serializer):
    """The page parameters, strictly: ``limit=0`` or ``limit=abc`` is a 400, not a silent default."""

    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, required=False, help_text=f"Items per page (default {DEFAULT_LIMIT})."
    )
    offset = serializers.IntegerField(min_value=0, required=False, help_text="Items to skip (default 0).")


class Page(LimitOffsetPagination):
    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT


def check_query(request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """The query parameters validated by ``serializer_class``; an unknown one is a 400 naming it."""
    params = request.query_params
    known = set(serializer_class().fields)
    unknown = {name: ["Unknown parameter."] for name in params if name not in known}
    values = {name: params[name] for name in known if name in params}
    checked = serializer_class(data=values)
    if not checked.is_valid() or unknown:
        fields = {k: [str(m) for m in v] for k, v in (checked.errors or {}).items()}
        raise InvalidInput("Invalid query parameters.", fields={**unknown, **fields})
    return dict(checked.validated_data)


def paginated(request, view, rows: Sequence[Any] | Any, serialize) -> Response:
    """One page of ``rows`` (a queryset or a list, already in order) as a JSON array, with its headers."""
    page = Page()
    items = page.paginate_queryset(rows, request, view=view)
    response = Response(serialize(items))
    response["X-Total-Count"] = str(page.count)
    next_link = page.get_next_link()
    if next_link:
        response["Link"] = f'<{next_link}>; rel="next"'
    return response


PAGE_HEADERS = [
    OpenApiParameter(
        "X-Total-Count", int, OpenApiParameter.HEADER, response=[200], description="How many items in all pages."
    ),
    OpenApiParameter(
        "Link",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description='`<url of the next page>; rel="next"`, present while more items remain.',
    ),
]
