# Its own module: rest_framework.views reads DEFAULT_PARSER_CLASSES when it is imported, so
# the parser cannot live in a module that imports rest_framework.views itself.
from rest_framework import exceptions, parsers


def has_lone_surrogate(data):
    """Whether any string (key or value) in parsed JSON holds a lone surrogate."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's parser catches only ValueError; a deeply nested body raises RecursionError.

    It also refuses lone surrogates ("\\ud800"): legal JSON escapes, but not text, so
    PostgreSQL cannot store them and an error message that echoes one cannot be rendered.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        if has_lone_surrogate(data):
            raise exceptions.ParseError("JSON parse error - the body holds a lone surrogate "
                                        "(\\ud800 to \\udfff), which is not text.")
        return data
