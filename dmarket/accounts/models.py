import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

# What a key's first characters are kept as, to tell tokens apart in the admin. 8 of the 40
# hex characters: the 128 bits left unknown are still far beyond guessing.
PREFIX_LENGTH = 8


def key_digest(key):
    """The SHA-256 of a key, in hex: all the database keeps of it. The keys are 160 random
    bits, so a plain hash (no salt, no slow function) cannot be reversed by guessing."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """An API key of a user's, sent as `Authorization: Token <key>`. The key itself is shown
    once, when it is issued; a copy of this table authenticates nobody.

    A machine token (`machine` set) is its machine agent's: issued with the machine's
    registration, deleted when the machine is removed, and good only for that machine's own
    routes (dmarket/accounts/permissions.py); everywhere else it is refused with 403."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True,
                            help_text="What the token was issued for (login, register, ...).")
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False,
                              help_text="The key's first characters; not a secret.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    machine = models.ForeignKey("machines.Machine", models.CASCADE, null=True, blank=True,
                                editable=False, related_name="tokens",
                                help_text="A machine token: its agent's, for this machine only.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user, name="", machine=None):
        """A new token of user's (with machine: that machine's token): (the saved row, its
        key). The key is nowhere else."""
        key = secrets.token_hex(20)
        token = cls.objects.create(user=user, name=name, prefix=key[:PREFIX_LENGTH],
                                   digest=key_digest(key), machine=machine)
        return token, key
