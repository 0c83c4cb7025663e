"""Parameter types the commands share."""

import re
from decimal import Decimal, InvalidOperation

import click


class MemorySize(click.ParamType):
    """512m, 4g, 1.5g or plain megabytes -> whole megabytes."""

    name = "SIZE"
    UNITS = {"": 1, "m": 1, "mb": 1, "mib": 1, "g": 1024, "gb": 1024, "gib": 1024,
             "t": 1024 ** 2, "tb": 1024 ** 2, "tib": 1024 ** 2,
             "k": Decimal(1) / 1024, "kb": Decimal(1) / 1024, "kib": Decimal(1) / 1024}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        unit = match.group(2).lower() if match else None
        if unit not in self.UNITS:
            self.fail(f"{value!r} is not a memory size such as 512m, 4g or 2048 (megabytes).",
                      param, ctx)
        try:
            mb = Decimal(match.group(1)) * self.UNITS[unit]
        except InvalidOperation:  # pragma: no cover (the pattern admits only numbers)
            self.fail(f"{value!r} is not a number.", param, ctx)
        if mb != mb.to_integral_value():
            self.fail(f"{value!r} is not a whole number of megabytes.", param, ctx)
        return int(mb)


class Duration(click.ParamType):
    """90, 90s, 30m, 2h, 1d -> whole seconds."""

    name = "DURATION"
    UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", value)
        unit = match.group(2).lower() if match else None
        if unit not in self.UNITS:
            self.fail(f"{value!r} is not a duration such as 90, 30m, 2h or 1d.", param, ctx)
        return int(match.group(1)) * self.UNITS[unit]
