from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny

from dmarket.accounts import views as accounts
from dmarket.cluster import views as cluster
from dmarket.common.health import HealthView
from dmarket.ops.metrics import MetricsView
from dmarket.credits import views as credits
from dmarket.jobs import pricing
from dmarket.envs import views as envs
from dmarket.files import views as files
from dmarket.inference import views as inference
from dmarket.jobs import views as jobs
from dmarket.machines import views as machines

api = [
    path("auth/register/", accounts.RegisterView.as_view(), name="register"),
    path("auth/login/", accounts.LoginView.as_view(), name="login"),
    path("auth/me/", accounts.MeView.as_view(), name="me"),
    path("machines/", machines.MachineListView.as_view(), name="machines"),
    path("machines/<int:pk>/", machines.MachineDetailView.as_view(), name="machine"),
    path("machines/<int:pk>/heartbeat/", machines.MachineHeartbeatView.as_view(),
         name="machine-heartbeat"),
    path("machines/<int:pk>/history/", machines.MachineHistoryView.as_view(),
         name="machine-history"),
    path("jobs/", jobs.JobListView.as_view(), name="job-list"),
    path("jobs/<int:pk>/", jobs.JobDetailView.as_view(), name="job"),
    path("jobs/<int:pk>/cancel/", jobs.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<int:pk>/log/", jobs.JobLogView.as_view(), name="job-log"),
    path("jobs/<int:pk>/results/", jobs.JobResultListView.as_view(), name="job-results"),
    path("jobs/<int:pk>/results/<path:path>", jobs.JobResultFileView.as_view(),
         name="job-result-file"),
    path("jobs/<int:pk>/executors/", cluster.ExecutorListView.as_view(), name="job-executors"),
    path("jobs/<int:pk>/executors/<str:executor_id>/log/", cluster.ExecutorLogView.as_view(),
         name="job-executor-log"),
    path("jobs/<int:pk>/inputs/<int:input_id>/<str:token>/<str:filename>",
         jobs.JobInputView.as_view(), name="job-input"),
    path("jobs/<int:pk>/environment/<str:token>/<str:filename>",
         jobs.JobEnvironmentView.as_view(), name="job-environment"),
    path("envs/", envs.EnvironmentListView.as_view(), name="envs"),
    path("envs/<str:key>/", envs.EnvironmentDetailView.as_view(), name="env"),
    path("envs/<str:key>/save/", envs.EnvironmentSaveView.as_view(), name="env-save"),
    path("files/", files.FileListView.as_view(), name="file-list"),
    # Before files/<path:name>; no file name ends with '/', so none is shadowed.
    path("files/usage/", files.StorageUsageView.as_view(), name="files-usage"),
    path("files/<path:name>", files.FileView.as_view(), name="file"),
    path("file-versions/<path:name>", files.FileVersionListView.as_view(), name="file-versions"),
    path("file-replicas/<path:name>", files.FileReplicasView.as_view(), name="file-replicas"),
    path("inference/", inference.InferenceListView.as_view(), name="inference-list"),
    path("inference/rates/", inference.InferenceRatesView.as_view(), name="inference-rates"),
    path("inference/<int:pk>/", inference.InferenceDetailView.as_view(), name="inference-detail"),
    path("inference/<int:pk>/cancel/", inference.InferenceCancelView.as_view(),
         name="inference-cancel"),
    path("inference/<int:pk>/stats/", inference.InferenceStatsView.as_view(),
         name="inference-stats"),
    path("inference/<int:pk>/results/", inference.InferenceResultListView.as_view(),
         name="inference-results"),
    path("inference/<int:pk>/results/download/",
         inference.InferenceResultDownloadView.as_view(), name="inference-download"),
    path("cluster/status/", inference.ClusterStatusView.as_view(), name="cluster-status"),
    path("credits/", credits.CreditsView.as_view(), name="credits"),
    path("credits/transactions/", credits.TransactionListView.as_view(), name="transactions"),
    path("prices/", pricing.PricesView.as_view(), name="prices"),
    path("health/", HealthView.as_view(), name="health"),
    path("metrics/", MetricsView.as_view(), name="metrics"),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[],
                                               permission_classes=[AllowAny]), name="schema"),
    # Swagger UI from the schema, its files from static/ (drf-spectacular-sidecar); "Try it
    # out" calls the API with the signed-in session and its CSRF token.
    path("docs/", SpectacularSwaggerView.as_view(
        url_name="schema", authentication_classes=[SessionAuthentication],
        permission_classes=[AllowAny]), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api)),
    path("", include("dmarket.web.urls")),
]

handler404 = "dmarket.common.api.json_404"
handler500 = "dmarket.common.api.json_500"
