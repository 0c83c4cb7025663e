from django.contrib.auth import authenticate, get_user_model
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import ApiToken
from .serializers import (DetailSerializer, LoginSerializer, RegisteredSerializer,
                          RegisterSerializer, TokenSerializer, UserSerializer)
from .services import UsernameTaken, user_register
from .throttles import LoginThrottle, LoginUsernameThrottle, RegisterThrottle

User = get_user_model()


class WrongCredentials(APIException):
    # Not AuthenticationFailed: DRF turns that into 403 on a view without authenticators.
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Wrong username or password."
    default_code = "wrong_credentials"


# The 429 of a throttled sign-up or login, and its header, in the OpenAPI document.
THROTTLED = OpenApiResponse(
    DetailSerializer, description="Too many attempts: the Retry-After header and the detail "
                                  "say after how many seconds to try again.")
RETRY_AFTER = OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, response=[429],
                               description="Seconds to wait before trying again.")


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [RegisterThrottle]

    @extend_schema(request=RegisterSerializer, parameters=[RETRY_AFTER],
                   responses={201: RegisteredSerializer, 429: THROTTLED})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            user, key = user_register(data["username"], data["email"], data["password"],
                                      token_name="register")
        except UsernameTaken:
            # Two registrations of one name raced past validation; the loser is told plainly.
            raise ValidationError({"username": ["This username is taken."]}) from None
        body = {"user": UserSerializer(user).data, "token": key}
        return Response(body, status=status.HTTP_201_CREATED)


class LoginView(APIView):
    """Each login issues a new token (only digests are kept: an existing key cannot be given
    back); the earlier ones stay valid until an operator revokes them."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle, LoginUsernameThrottle]

    @extend_schema(request=LoginSerializer, parameters=[RETRY_AFTER],
                   responses={200: TokenSerializer, 429: THROTTLED})
    def post(self, request):
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None:
            raise WrongCredentials()
        _, key = ApiToken.issue(user, name="login")
        return Response({"token": key})


class MeView(APIView):
    @extend_schema(responses={200: UserSerializer})
    def get(self, request):
        return Response(UserSerializer(request.user).data)
