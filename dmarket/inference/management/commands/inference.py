from dmarket.common.daemon import DaemonCommand
from dmarket.inference.keeper import inference_tick, server_stop


class Command(DaemonCommand):
    help = ("Keep the inference server (one Spark application serving every inference job) "
            "running while inference jobs wait or run, and bill what they ran. Without --loop, "
            "one iteration.")
    interval_setting = "DMARKET_INFERENCE_POLL"
    report = "{} inference server(s) started"

    def tick(self, options):
        return inference_tick()

    def handle(self, *args, **options):
        super().handle(*args, **options)
        if options["loop"]:
            # The keeper's SIGTERM (scripts/stop_central_server.sh) stops the server too.
            server_stop()
