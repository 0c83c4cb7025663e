from django.urls import path

from . import spark_ui, views

app_name = "web"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("signin/", views.signin, name="signin"),
    path("signup/", views.signup, name="signup"),
    path("signout/", views.signout, name="signout"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/new/", views.job_new, name="job_new"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/spark/", spark_ui.job_spark_ui, name="job_spark"),
    path("jobs/<int:pk>/spark/<path:rest>", spark_ui.job_spark_ui, name="job_spark_page"),
    path("machines/", views.machines, name="machines"),
    path("machines/<int:pk>/", views.machine_detail, name="machine"),
    path("credits/", views.credits, name="credits"),
    path("files/", views.files, name="files"),
    path("inference/", views.inference, name="inference"),
    path("inference/<int:pk>/", views.inference_detail, name="inference_job"),
    path("cluster/", views.cluster, name="cluster"),
    path("tokens/", views.tokens, name="tokens"),
]
