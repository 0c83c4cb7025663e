"""What every command shares: the server, the token, and whether to print JSON."""

import click

from . import config
from .api import Client


class Context:
    def __init__(self, server=None, as_json=False):
        self.server_flag = server
        self.as_json = as_json
        # A submitting command's --quiet: print only the new job's id.
        self.quiet = False

    @property
    def server(self):
        return config.resolve(self.server_flag)[0]

    def client(self, auth=True):
        """A client for the server; with auth, one that carries the saved token."""
        server, token = config.resolve(self.server_flag)
        if auth and not token:
            raise click.ClickException(
                f"not logged in to {server}: run `dmarket login` or `dmarket register` "
                "(or set DMARKET_TOKEN)")
        return self.closing(Client(server, token if auth else None))

    @staticmethod
    def closing(client):
        """Close the client's connections when the command ends (a server keeps a thread per
        open connection)."""
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.call_on_close(client.session.close)
        return client


pass_context = click.make_pass_decorator(Context, ensure=True)
