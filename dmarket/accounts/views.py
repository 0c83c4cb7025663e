from django.contrib.auth import authenticate, get_user_model
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import ApiToken
from .serializers import (LoginSerializer, RegisteredSerializer, RegisterSerializer,
                          TokenSerializer, UserSerializer)

User = get_user_model()


class WrongCredentials(APIException):
    # Not AuthenticationFailed: DRF turns that into 403 on a view without authenticators.
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Wrong username or password."
    default_code = "wrong_credentials"


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=RegisterSerializer, responses={201: RegisteredSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            with transaction.atomic():
                user = User.objects.create_user(data["username"], data["email"],
                                                data["password"])
                _, key = ApiToken.issue(user, name="register")
        except IntegrityError:
            # Two registrations of one name raced past validation; the loser is told plainly.
            raise ValidationError({"username": ["This username is taken."]}) from None
        body = {"user": UserSerializer(user).data, "token": key}
        return Response(body, status=status.HTTP_201_CREATED)


class LoginView(APIView):
    """Each login issues a new token (only digests are kept: an existing key cannot be given
    back); the earlier ones stay valid until an operator revokes them."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=LoginSerializer, responses={200: TokenSerializer})
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
