from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from .models import ApiToken

User = get_user_model()


class UsernameTaken(Exception):
    pass


def user_register(username, email, password, token_name=None):
    """A new user (the sign-up grant follows from its creation, dmarket/credits/apps.py), and
    with token_name, a first API token: (user, key or None). UsernameTaken when another
    sign-up of the name won the race past the serializer's check."""
    try:
        with transaction.atomic():
            user = User.objects.create_user(username, email, password)
            key = ApiToken.issue(user, name=token_name)[1] if token_name else None
    except IntegrityError:
        raise UsernameTaken(username) from None
    return user, key
