from urllib.parse import unquote_to_bytes

from django.http import JsonResponse


class RejectNulMiddleware:
    """A NUL character in the path or the query string is a 400 naming the problem: no name,
    pattern or parameter of the market may hold one, and PostgreSQL refuses it in any string
    (where it would surface as a 500)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or b"\x00" in unquote_to_bytes(query.replace("+", " ")):
            return JsonResponse({"detail": "The request's path or query string holds a NUL "
                                           "character (%00), which no parameter may hold."},
                                status=400)
        return self.get_response(request)
