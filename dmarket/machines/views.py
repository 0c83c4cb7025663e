from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dmarket.accounts.models import ApiToken
from dmarket.common.api import Conflict, choice_param, list_all_param, visible_to
from dmarket.credits.models import ZERO, LedgerEntry

from .models import Machine
from .serializers import (HeartbeatReplySerializer, HeartbeatSerializer,
                          MachineCreateSerializer, MachineRegisteredSerializer,
                          MachineSerializer, MachineStateChangeSerializer)
from .services import (agent_security, heartbeat_timing, machine_heartbeat,
                       machine_set_state)

STATES = Machine.State.values


def machines_with_earnings():
    earned = Sum("ledger__amount", filter=Q(ledger__kind=LedgerEntry.EARNING))
    # An aggregate drops Meta.ordering (GROUP BY), so order again: newest first, and stable
    # for pagination.
    return (Machine.objects.select_related("user").annotate(earned=Coalesce(earned, ZERO))
            .order_by("-id"))


def spark_security():
    """What the agent's worker needs to join the closed cluster (only its agent sees it: the
    registration and heartbeat answers)."""
    return agent_security()


def agent_settings():
    interval, timeout = heartbeat_timing()
    return {
        "master_url": settings.DMARKET_SPARK_MASTER_URL,
        "heartbeat_interval": interval,
        "heartbeat_timeout": timeout,
        "executor_env": settings.DMARKET_JOB_ENV,
        **spark_security(),
    }


class MachineListView(generics.ListCreateAPIView):
    serializer_class = MachineSerializer

    def get_queryset(self):
        states = choice_param(self.request, "state", STATES)
        qs = machines_with_earnings()
        if not list_all_param(self.request):
            qs = qs.filter(user=self.request.user)
        return qs.filter(state__in=states) if states else qs.exclude(state=Machine.REMOVED)

    @extend_schema(operation_id="machines_list", parameters=[
        OpenApiParameter("state", OpenApiTypes.STR, enum=STATES,
                         description="Only machines in these states (comma-separated). "
                                     "Removed machines are listed only when asked for."),
        OpenApiParameter("all", OpenApiTypes.BOOL, description="Operators: every user's."),
    ])
    def get(self, request):
        return self.list(request)

    @extend_schema(request=MachineCreateSerializer, responses={201: MachineRegisteredSerializer})
    def post(self, request):
        serializer = MachineCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            machine = Machine.objects.create(user=request.user, **data)
            # The agent's own token: this machine's routes only, deleted with its removal.
            _, machine.token = ApiToken.issue(request.user, name="machine", machine=machine)
        machine.earned = ZERO
        machine.agent = agent_settings()
        return Response(MachineRegisteredSerializer(machine).data,
                        status=status.HTTP_201_CREATED)


class MachineDetailView(APIView):
    # The machine's own token (its agent's) may read it, not remove it.
    machine_token_methods = ("GET",)

    @extend_schema(responses={200: MachineSerializer})
    def get(self, request, pk):
        machine = get_object_or_404(visible_to(machines_with_earnings(), request.user), pk=pk)
        return Response(MachineSerializer(machine).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        machine = get_object_or_404(visible_to(Machine.objects.all(), request.user), pk=pk)
        if machine.state == Machine.REMOVED:
            raise Conflict(f"Machine {pk} was already removed.")
        machine_set_state(machine, Machine.REMOVED, f"removed by {request.user.username}")
        return Response(status=status.HTTP_204_NO_CONTENT)


class MachineHeartbeatView(APIView):
    machine_token_methods = ("POST",)

    @extend_schema(request=HeartbeatSerializer, responses={200: HeartbeatReplySerializer})
    def post(self, request, pk):
        # Only the machine's owner (its agent) may speak for it, staff included. An agent's
        # machine token brought its machine along (the token's lookup joined it).
        token_machine = getattr(request.auth, "machine", None)
        if (token_machine is not None and token_machine.pk == pk
                and token_machine.user_id == request.user.pk):
            machine = token_machine
        else:
            machine = get_object_or_404(Machine.objects.filter(user=request.user), pk=pk)
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if machine.state == Machine.REMOVED:
            raise Conflict(f"Machine {pk} was removed; register it again to share it.")
        # The agent beats at the interval of each answer: with more machines than the server
        # can hear at the configured one, a longer one (heartbeat_timing).
        interval, timeout = heartbeat_timing()
        machine_heartbeat(machine, timeout=timeout, **serializer.validated_data)
        # The secret again: a rotated one reaches every agent with its next heartbeat.
        body = {"state": machine.state, "heartbeat_interval": interval,
                "heartbeat_timeout": timeout, **spark_security()}
        return Response(body)


class MachineHistoryView(generics.ListAPIView):
    serializer_class = MachineStateChangeSerializer

    def get_queryset(self):
        machine = get_object_or_404(visible_to(Machine.objects.all(), self.request.user),
                                    pk=self.kwargs["pk"])
        return machine.history.order_by("-id")

    @extend_schema(operation_id="machines_history_list")
    def get(self, request, pk):
        return self.list(request)
