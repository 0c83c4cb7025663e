# The navigation's current section, from the URL's name (job, job_new and jobs are "jobs").
SECTIONS = {"job": "jobs", "job_new": "jobs", "machine": "machines",
            "inference_job": "inference"}


def nav(request):
    match = getattr(request, "resolver_match", None)
    if match is None or match.app_name != "web":
        return {}
    return {"nav": SECTIONS.get(match.url_name, match.url_name)}
