"""What every endpoint shares: pagination, and errors as JSON a person can act on."""

import re

from django.core.paginator import EmptyPage, Paginator
from django.http import HttpResponseServerError, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.views import exception_handler as drf_exception_handler


class FirstPagePaginator(Paginator):
    """Page 1 is read with one row more than it shows: when that row is not there, the page
    holds every row and its length is the count, so no COUNT(*) runs (most users' lists fit
    on their first page). Other pages, and a first page with more behind it, count as
    Django's Paginator does."""

    def page(self, number):
        try:
            first = int(number) == 1
        except (TypeError, ValueError):
            first = False
        if not first or self.orphans or "count" in self.__dict__:
            return super().page(number)
        rows = list(self.object_list[:self.per_page + 1])
        if len(rows) <= self.per_page:
            self.count = len(rows)  # Paginator.count is a cached_property
        if not rows and not self.allow_empty_first_page:
            raise EmptyPage(self.error_messages["no_results"])
        return self._get_page(rows[:self.per_page], 1, self)


class Pagination(PageNumberPagination):
    django_paginator_class = FirstPagePaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class NewestFirstCursor(CursorPagination):
    """Keyset pagination, newest (highest id) first: a page costs an index range scan however
    many rows come before it, and no COUNT(*) (the ledger grows without bound)."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        # Its position is an id (DRF passes it to the filter unchecked: "p=a" was a 500).
        if cursor is not None and cursor.position is not None and not re.fullmatch(
                r"[0-9]{1,18}", cursor.position):
            raise exceptions.NotFound(self.invalid_cursor_message)
        return cursor


class PaymentRequired(exceptions.APIException):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_detail = "Not enough available credits."
    default_code = "payment_required"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource's state forbids this action."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request's body is too large."
    default_code = "payload_too_large"


class LengthRequired(exceptions.APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "Give the body's size in Content-Length."
    default_code = "length_required"


def _flatten(errors, prefix=""):
    """Yield "field: message" strings from DRF's nested error structure."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            # str(): a list's item errors are keyed by index, and index 0 must still show.
            name = str(key) if key != "non_field_errors" else ""
            yield from _flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name)
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            if isinstance(value, (dict, list)):
                yield from _flatten(value, f"{prefix}[{index}]")
            else:
                yield from _flatten(value, prefix)
    else:
        yield f"{prefix}: {errors}" if prefix else str(errors)


def exception_handler(exc, context):
    """Give every error body a top-level "detail" string; field errors also under "errors"."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        response.data = {"detail": "; ".join(_flatten(errors)), "errors": errors}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"detail": str(data["detail"])}
    return response


def json_404(request, exception=None):
    if not request.path.startswith("/api/"):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": f"No such page: {request.path}"}, status=404)


def json_500(request):
    request_id = getattr(request, "request_id", "")
    if not request.path.startswith("/api/"):
        # A page: a page, standalone (a template that needs nothing that may have failed).
        body = render_to_string("500.html", {"request_id": request_id})
        return HttpResponseServerError(body)
    return JsonResponse({"detail": "Internal server error; the operators have the details "
                                   f"(request {request_id}).", "request_id": request_id},
                        status=500)



def visible_to(queryset, user):
    """Staff (operators) see every object by id; a user sees only their own."""
    return queryset if user.is_staff else queryset.filter(user=user)


def choice_param(request, name, choices):
    """A query parameter that must be one of `choices` (comma-separated for several)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    values = [v.strip().upper() for v in raw.split(",") if v.strip()]
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise exceptions.ValidationError(
            {name: [f"Unknown value {', '.join(bad) or raw!r}; one of {', '.join(choices)}."]}
        )
    return values


def int_param(request, name, default, minimum, maximum=None):
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: [f"{raw!r} is not a whole number."]}) from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise exceptions.ValidationError({name: [f"Must be at least {minimum}{upper}."]})
    return value


def bool_param(request, name):
    """?name=true or ?name=false; None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise exceptions.ValidationError({name: [f"Use {name}=true or {name}=false."]})


def list_all_param(request):
    """?all=true: an operator's list of everyone's objects."""
    raw = request.query_params.get("all", "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw not in ("1", "true", "yes"):
        raise exceptions.ValidationError({"all": ["Use all=true or all=false."]})
    if not request.user.is_staff:
        raise exceptions.PermissionDenied("Only operators may list everyone's objects.")
    return True
