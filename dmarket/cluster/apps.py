from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "dmarket.cluster"
    verbose_name = "Spark cluster"

    def ready(self):
        # Agents get the cluster's secret and conf in their machines' answers: machines, below
        # cluster, imports nothing of it, so cluster hands it the function that gives them.
        from dmarket.machines.services import agent_security_set

        from .security import agent_security

        agent_security_set(agent_security)
