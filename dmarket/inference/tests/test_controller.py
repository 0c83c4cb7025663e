"""The inference server's Controller (dmarket.inference.server), without Spark: lockstep of the
running jobs on queries submitted. Stand-in runners carry what the controller reads of a
Runner: submitted (queries completed plus in batches in flight), first_completion (None until
the job's first batch is back), batch_size and finished."""

from types import SimpleNamespace

import pytest

from dmarket.inference.server import Controller


class Runner:
    """A stand-in for server.Runner: hashed by identity, as the real thread is."""

    def __init__(self, batch_size=10, submitted=0, warm=True):
        self.batch_size = batch_size
        self.completed = submitted
        self.in_flight_queries = 0
        self.first_completion = 1.0 if warm else None
        self.finished = False

    @property
    def submitted(self):
        return self.completed + self.in_flight_queries


def controller(*runners):
    made = Controller()
    made.server = SimpleNamespace(runners={pk: r for pk, r in enumerate(runners, 1)})
    return made


def test_a_single_job_is_always_allowed():
    alone = Runner(submitted=10 ** 6)
    control = controller(alone)

    assert control.allows(alone, 10 ** 6)
    alone.completed += 10 ** 6
    assert control.allows(alone, 10 ** 6)


def test_until_a_second_job_is_warm_neither_is_held_back():
    ahead, cold = Runner(submitted=500), Runner(warm=False)
    control = controller(ahead, cold)

    # The cold job has completed nothing yet: no lockstep, either way.
    assert control.allows(ahead, 100)
    assert control.allows(cold, 100)


def test_of_two_warm_jobs_the_one_ahead_by_more_than_a_batch_is_held_back():
    a, b = Runner(), Runner()
    control = controller(a, b)

    # Within one batch (10) of the job that has submitted least: up to exactly one batch.
    assert control.allows(b, 10)
    b.in_flight_queries += 10
    assert not control.allows(b, 1)
    assert not control.allows(b, 10)
    # Its batches coming back change nothing: it is what it submitted that counts.
    b.in_flight_queries, b.completed = 0, 10
    assert not control.allows(b, 10)
    # The other catches up: the first one may go again.
    a.in_flight_queries += 10
    assert control.allows(b, 10)


def test_the_job_behind_may_always_submit_a_batch():
    behind, ahead = Runner(), Runner()
    control = controller(behind, ahead)
    assert control.allows(ahead, 10)

    ahead.completed += 10_000
    for _ in range(5):
        assert control.allows(behind, 10)
        assert not control.allows(ahead, 10)
        behind.in_flight_queries += 10
    # More than one batch at once is more than "within one batch", even for it: the
    # runner's group of batches is cut short.
    assert not control.allows(behind, 11)


def test_the_slack_is_the_largest_batch_size_among_the_jobs():
    small, large = Runner(batch_size=4), Runner(batch_size=16)
    control = controller(small, large)

    # The small-batch job may run ahead by the large job's batch, not its own.
    assert control.allows(small, 16)
    assert not control.allows(small, 17)
    small.in_flight_queries += 12
    assert control.allows(small, 4)
    assert not control.allows(small, 5)


def test_progress_counts_from_when_the_set_of_jobs_last_changed():
    # A ran alone a long time: it does not pay for it once B is warm.
    veteran, newcomer = Runner(submitted=5000), Runner(submitted=10)
    control = controller(veteran, newcomer)

    assert control.allows(veteran, 10)
    veteran.in_flight_queries += 10
    assert not control.allows(veteran, 10)
    assert control.allows(newcomer, 10)


def test_a_job_joining_resets_the_baseline():
    a, b, joining = Runner(), Runner(), Runner(warm=False)
    control = controller(a, b, joining)
    control.allows(a, 10)
    b.completed += 100
    assert not control.allows(b, 10)

    # Its first batch is back: from here on, everyone's progress counts from zero again.
    joining.first_completion = 2.0
    assert control.allows(b, 10)
    b.in_flight_queries += 10
    assert not control.allows(b, 10)
    assert control.allows(a, 10) and control.allows(joining, 10)


@pytest.mark.parametrize("leaves", ["finished", "removed"])
def test_a_job_leaving_releases_the_other(leaves):
    behind, ahead = Runner(), Runner()
    control = controller(behind, ahead)
    control.allows(ahead, 10)
    ahead.completed += 100
    assert not control.allows(ahead, 10)

    if leaves == "finished":
        behind.finished = True
    else:
        del control.server.runners[1]
    assert control.allows(ahead, 10 ** 6)


def test_a_job_leaving_resets_the_baseline_of_those_that_stay():
    a, b, c = Runner(), Runner(), Runner()
    control = controller(a, b, c)
    control.allows(a, 10)
    b.completed += 30
    c.completed += 100
    assert not control.allows(c, 10)

    # a, the one that had submitted least, leaves: b and c compare from here.
    a.finished = True
    assert control.allows(c, 10)
    c.in_flight_queries += 10
    assert not control.allows(c, 10)
    assert control.allows(b, 10)


def simulate(costs, batch=10, limit=4, ticks=400, lockstep=True):
    """Runners as server.Runner drives them, on a cluster with a core for every batch: each
    tick, the batches due come back, then each job submits batches while it has fewer than
    `limit` in flight and the controller allows. A batch of job i takes costs[i] ticks.
    Returns each job's queries completed after each tick."""
    runners = [Runner(batch_size=batch, warm=False) for _ in costs]
    control = controller(*runners)
    in_flight = [[] for _ in costs]
    history = []
    for tick in range(ticks):
        for runner, flying in zip(runners, in_flight):
            for due in [t for t in flying if t <= tick]:
                flying.remove(due)
                runner.in_flight_queries -= batch
                runner.completed += batch
                if runner.first_completion is None:
                    runner.first_completion = float(tick)
        for runner, flying, cost in zip(runners, in_flight, costs):
            while len(flying) < limit and (not lockstep or control.allows(runner, batch)):
                flying.append(tick + cost)
                runner.in_flight_queries += batch
        history.append([r.completed for r in runners])
    return history


def test_jobs_of_different_costs_complete_queries_at_the_same_rate():
    # One job's batches cost five times the other's: the cheap one waits for the dear one,
    # which keeps its `limit` batches in flight. (The cheap one ran alone until the dear one's
    # first batch was back: that head start stays, progress counts from then.)
    history = simulate([1, 5])
    base = history[20]

    # Over any stretch from then, the same number of queries, give or take the batches in
    # flight (and one batch of slack).
    for now in history[21:]:
        cheap, dear = (n - b for n, b in zip(now, base))
        assert abs(cheap - dear) <= (4 + 1) * 10
    assert history[-1][1] - base[1] > 500

    # Without the controller the cheap job would run five times as fast.
    free = simulate([1, 5], lockstep=False)
    cheap, dear = (e - s for s, e in zip(free[20], free[-1]))
    assert cheap >= 4 * dear
