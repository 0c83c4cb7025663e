import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarket.settings")
django_application = get_wsgi_application()


def application(environ, start_response):
    # Behind the front (dmarket/common/front.py) gunicorn listens on a Unix socket, whose
    # peer has no address (REMOTE_ADDR ""): the client's is what nginx saw and set in
    # X-Real-IP. Over TCP the header is the client's own and means nothing.
    if environ.get("REMOTE_ADDR") == "" and "HTTP_X_REAL_IP" in environ:
        environ["REMOTE_ADDR"] = environ.pop("HTTP_X_REAL_IP")
    return django_application(environ, start_response)
