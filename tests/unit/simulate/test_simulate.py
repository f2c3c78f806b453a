"""`synapscribe simulate`: the event loop against queueing theory, the policies, the CLI."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from synapscribe.cli import main
from synapscribe_ops.simulate.cli import parse_policy
from synapscribe_ops.simulate.engine import FleetModel, Question, Simulation
from synapscribe_ops.simulate.policy import Floor, Policy, ScalingSettings, TargetTracker
from synapscribe_ops.simulate.queueing import erlang_c, mm1_mean_wait, mmc_mean_wait
from synapscribe_ops.simulate.workload import Workload, day_of_questions, poisson_arrivals

ROOT = Path(__file__).resolve().parents[3]
FIXED = Policy("fixed", 1, 1, Floor(1, 1, 0, 24), None)
#: 99% two-sided normal quantile for the batch-means confidence intervals below.
Z99 = 2.576


def _run_queue(servers: int, lam: float, mu: float, count: int, seed: int) -> list[Question]:
    qs = poisson_arrivals(lam, count, 1 / mu, seed)
    model = FleetModel(slots=servers, queue_timeout=math.inf, startup=60)
    return Simulation(model, FIXED, seed=seed, horizon=qs[-1].arrival).run(qs).questions


def _batch_interval(values: list[float], batches: int = 40) -> tuple[float, float]:
    """Mean and 99% half-width by batch means (waits in a queue are correlated; batch means are not)."""
    size = len(values) // batches
    means = [statistics.fmean(values[i * size : (i + 1) * size]) for i in range(batches)]
    return statistics.fmean(means), Z99 * statistics.stdev(means) / math.sqrt(batches)


@pytest.mark.parametrize(("servers", "lam", "mu"), [(4, 3.2, 1.0), (8, 5.6, 1.0)])
def test_mmc_matches_erlang_c(servers: int, lam: float, mu: float):
    """Poisson arrivals, exponential service, c slots, no scaling: Erlang C's P(wait) and W_q.

    Tolerance: the theory value lies inside the simulation's 99% batch-means confidence interval
    (150,000 arrivals after a 10,000-arrival warm-up), and that interval is tight (P(wait) within 6% and W_q within 12% of
    the theory value; waits at 80% load vary a lot), so a wrong model cannot pass on a wide interval.
    """
    qs = _run_queue(servers, lam, mu, 160_000, seed=11)[10_000:]
    waited = [1.0 if q.wait > 0 else 0.0 for q in qs]
    waits = [q.wait for q in qs]
    p_sim, p_half = _batch_interval(waited)
    w_sim, w_half = _batch_interval(waits)
    p_theory, w_theory = erlang_c(servers, lam, mu), mmc_mean_wait(servers, lam, mu)
    assert abs(p_sim - p_theory) <= p_half, (p_sim, p_half, p_theory)
    assert abs(w_sim - w_theory) <= w_half, (w_sim, w_half, w_theory)
    assert p_half < 0.06 * p_theory and w_half < 0.12 * w_theory


def test_mm1_matches_theory():
    qs = _run_queue(1, 0.7, 1.0, 160_000, seed=5)[10_000:]
    w_sim, w_half = _batch_interval([q.wait for q in qs])
    w_theory = mm1_mean_wait(0.7, 1.0)  # 2.333 s
    assert abs(w_sim - w_theory) <= w_half and w_half < 0.12 * w_theory, (w_sim, w_half, w_theory)


def test_erlang_c_known_values():
    # One server: P(wait) = rho. Two servers at a = 1: C = 1/3 (textbook value).
    assert erlang_c(1, 0.5, 1.0) == pytest.approx(0.5)
    assert erlang_c(2, 1.0, 1.0) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="utilisation"):
        erlang_c(2, 2.0, 1.0)


def test_queue_timeout_gives_busy_and_frees_the_queue():
    # One slot, a 10 s job, then three arrivals: the first two time out after 2 s, the third
    # arrives after the first job ends and runs at once.
    qs = [Question(0.0, (10.0,)), Question(1.0, (1.0,)), Question(2.0, (1.0,)), Question(11.0, (1.0,))]
    model = FleetModel(slots=1, queue_timeout=2.0, startup=60)
    out = Simulation(model, FIXED, seed=1, horizon=20).run(qs)
    assert [q.outcome for q in out.questions] == ["answered", "busy", "busy", "answered"]
    assert [q.wait for q in out.questions] == [0.0, 2.0, 2.0, 0.0]


def test_voice_question_waits_for_both_requests():
    qs = [Question(0.0, (5.0,)), Question(0.5, (1.8, 4.0))]
    out = Simulation(FleetModel(slots=2, queue_timeout=20, startup=60), FIXED, seed=1, horizon=20).run(qs)
    # Its transcription takes the free slot at 0.5; its answer waits for that slot (free at 2.3),
    # not for the first question's (free at 5.0): the question's wait is its longest request's.
    assert out.questions[1].wait == pytest.approx(1.8)
    assert out.questions[1].outcome == "answered"


def test_waiting_answers_go_before_waiting_transcriptions():
    # One slot, busy until 5.0; a voice question (transcription, answer) arrives at 1.0 and a text
    # question at 2.0. Answers first: the voice question's answer (4.0 s) runs 5.0-9.0, the text
    # answer 9.0-10.0, the transcription last (10.0), as AgentCore's admission orders them.
    qs = [
        Question(0.0, (5.0,), (0,)),
        Question(1.0, (1.8, 4.0), (1, 0)),
        Question(2.0, (1.0,), (0,)),
    ]
    out = Simulation(FleetModel(slots=1, queue_timeout=60, startup=60), FIXED, seed=1, horizon=30).run(qs)
    assert [q.wait for q in out.questions] == [0.0, pytest.approx(9.0), pytest.approx(7.0)]


@pytest.mark.parametrize(("aging", "transcription_wait"), [(math.inf, 7.0), (3.0, 4.0), (4.5, 5.0)])
def test_a_transcription_waiting_past_the_aging_bound_goes_before_newer_answers(
    aging: float, transcription_wait: float
):
    # One slot, busy until 5.0; a transcription queued at 1.0, then 1 s answers at 2.0, 3.0, 4.0.
    # Without aging the three answers run 5-8 and the transcription waits to 8.0 (7 s). Aged 3 s,
    # it has waited 4 s at 5.0 and goes first. Aged 4.5 s, the answer from 2.0 runs 5-6, then the
    # transcription (5 s waited) goes before the newer answers.
    qs = [
        Question(0.0, (5.0,), (0,)),
        Question(1.0, (1.8,), (1,)),
        Question(2.0, (1.0,), (0,)),
        Question(3.0, (1.0,), (0,)),
        Question(4.0, (1.0,), (0,)),
    ]
    model = FleetModel(slots=1, queue_timeout=60, startup=60, aging=aging)
    out = Simulation(model, FIXED, seed=1, horizon=30).run(qs).questions
    assert out[1].wait == pytest.approx(transcription_wait)
    assert all(q.outcome == "answered" for q in out)


def test_cli_compares_the_admission_orders_on_one_seed(capsys):
    flags = ["simulate", "--sessions", "2000", "--policy", "cdk", "--aging", "4", "--compare-admission"]
    assert main([*flags, "--json"]) == 0
    out = capsys.readouterr().out
    assert "admission aging 4 s" in out
    data = json.loads(out[out.index("{") :])
    orders = ("answers first", "fcfs", "aged 4 s")
    assert list(data) == [f"{p}: {o}" for p in ("target 6 out 480 in 900", "schedule") for o in orders]
    questions = {f["questions"] for f in data.values()}
    assert len(questions) == 1  # the same day for every order


def test_target_tracking_scales_out_after_three_periods_and_respects_cooldown():
    tracker = TargetTracker(
        ScalingSettings(
            target_in_flight_per_instance=4, scale_out_cooldown_seconds=600, scale_in_cooldown_seconds=900
        )
    )
    assert tracker.decide(60, 16, 2, 2) == 2
    assert tracker.decide(120, 16, 2, 2) == 2
    assert tracker.decide(180, 16, 2, 2) == 4  # third datapoint above the target
    assert tracker.decide(240, 24, 2, 4) == 4  # cooldown
    assert tracker.decide(780, 24, 2, 4) == 6
    for t in range(840, 840 + 14 * 60, 60):
        assert tracker.decide(t, 2, 6, 6) == 6  # fewer than 15 low datapoints
    low = 840 + 14 * 60
    # One instance at a time, as the deployed simple scaling policy (-1, cooldown) does.
    assert tracker.decide(low, 2, 6, 6) == 5
    assert tracker.decide(low + 60, 2, 5, 5) == 5  # scale-in cooldown
    assert tracker.decide(low + 900, 2, 5, 5) == 4


def test_schedule_floor_and_scaling_in_a_day():
    env = json.loads((ROOT / "cdk.json").read_text())["context"]["synapscribe:environments"]["prod"]
    w = Workload(sessions_per_day=8000)
    qs = day_of_questions(w, seed=3)
    assert qs == sorted(qs, key=lambda q: q.arrival) and len(qs) > 8000
    model = FleetModel(slots=8, queue_timeout=20, startup=480, spot_rate_per_hour=0.05)
    sched = Simulation(model, parse_policy("schedule", env), seed=4, horizon=86400).run(list(qs))
    cap = env["capacity"]
    assert set(sched.desired_by_minute) == {cap["min"], cap["desired"]}
    qs2 = day_of_questions(w, seed=3)
    tracked = Simulation(model, parse_policy("target=1,out=480,in=900", env), seed=4, horizon=86400).run(qs2)
    assert max(tracked.desired_by_minute) > cap["desired"]
    assert min(tracked.desired_by_minute) >= cap["min"] and max(tracked.desired_by_minute) <= cap["max"]
    assert tracked.instance_seconds > sched.instance_seconds


def test_same_seed_same_day():
    w = Workload(sessions_per_day=500)
    a, b = day_of_questions(w, 9), day_of_questions(w, 9)
    assert [(q.arrival, q.service_times) for q in a] == [(q.arrival, q.service_times) for q in b]


def test_cli_prints_the_comparison(capsys):
    assert main(["simulate", "--sessions", "2000", "--policy", "cdk", "--against", "schedule", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out[out.index("{") :])
    assert set(data) == {"target 6 out 480 in 900", "schedule"}
    for figures in data.values():
        assert figures["questions"] == figures["answered"] + figures["busy"] + figures["no_host"]
        assert figures["cost_usd"] > 0


def test_cli_start_up_defaults_to_the_platforms_one_figure(capsys, monkeypatch):
    """Without --startup-seconds the simulator plans with platform.yaml's fleet.host_startup_seconds."""
    import synapscribe_ops.simulate.cli as simulate_cli
    from synapscribe.platform import load_platform, parse_platform

    data = load_platform().model_dump()
    data["fleet"]["host_startup_seconds"] = 777
    monkeypatch.setattr(simulate_cli, "load_platform", lambda: parse_platform(data))
    assert main(["simulate", "--sessions", "50", "--policy", "schedule", "--json"]) == 0
    assert "start-up 777 s" in capsys.readouterr().out
    assert (
        main(["simulate", "--sessions", "50", "--policy", "schedule", "--startup-seconds", "90", "--json"])
        == 0
    )
    assert "start-up 90 s" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--policy", "target=0,out=480,in=900"], "target_in_flight_per_instance"),
        (["--policy", "speed=3"], "expected `schedule`, `cdk`"),
        (["--policy", "target=x,out=1,in=1"], "is not a number"),
        (["--env", "nosuch"], "--env: 'nosuch'"),
    ],
)
def test_cli_bad_input(flags: list[str], message: str, capsys):
    assert main(["simulate", "--sessions", "100", *flags]) == 2
    assert message in capsys.readouterr().err


def test_the_guides_run_is_what_the_command_prints_and_chose_cdk_json(capsys):
    """docs/operators-guide.md quotes `synapscribe simulate --env prod --choose`; cdk.json holds its choice."""
    guide = (ROOT / "docs" / "operators-guide.md").read_text()
    assert "synapscribe simulate --env prod --choose\n" in guide
    assert main(["simulate", "--env", "prod", "--choose"]) == 0
    printed = capsys.readouterr().out.rstrip()
    assert printed in guide, "reprint the run in the operator's guide"
    chosen = next(line for line in printed.splitlines() if line.startswith("chosen: "))
    envs = json.loads((ROOT / "cdk.json").read_text())["context"]["synapscribe:environments"]
    for env in envs.values():
        s = ScalingSettings.model_validate(env["scaling"])
        assert chosen == (
            f"chosen: target {s.target_in_flight_per_instance:g} out {s.scale_out_cooldown_seconds} "
            f"in {s.scale_in_cooldown_seconds}"
        )


def test_the_guides_admission_comparison_is_what_the_command_prints(capsys):
    """docs/operators-guide.md quotes the admission orders' run that chose admission_aging_seconds."""
    guide = (ROOT / "docs" / "operators-guide.md").read_text()
    command = "synapscribe simulate --env prod --policy cdk --against schedule --compare-admission"
    assert command + "\n" in guide
    assert main(command.split()[1:]) == 0
    assert capsys.readouterr().out.rstrip() in guide, (
        "reprint the admission comparison in the operator's guide"
    )


def test_the_guides_affinity_comparison_is_what_the_command_prints(capsys):
    """docs/operators-guide.md quotes the lecture-affinity run (prefix hits and first token both ways)."""
    guide = (ROOT / "docs" / "operators-guide.md").read_text()
    command = "synapscribe simulate --env prod --compare-affinity"
    assert command + "\n" in guide
    assert main(command.split()[1:]) == 0
    printed = capsys.readouterr().out.rstrip()
    assert printed in guide, "reprint the affinity comparison in the operator's guide"
    assert "follow-ups on a warm prefix" in printed and "first token p50" in printed


def _lecture_day(routing: str, spot: float = 0.0, held: int = 80) -> list[Question]:
    """Four hosts, 200 lectures asked five times each in turn; a cold prefill of 2 s."""
    qs = []
    for round_ in range(5):
        for lecture in range(200):
            q = Question(round_ * 400.0 + lecture * 2.0, (0.1,), None, lecture=lecture, cold=2.0)
            q.follow_up, q.first_token_base = round_ > 0, 0.1
            qs.append(q)
    model = FleetModel(
        slots=8,
        queue_timeout=math.inf,
        startup=60,
        spot_rate_per_hour=spot,
        held_lectures=held,
        routing=routing,
    )
    policy = Policy("four", 4, 4, Floor(4, 4, 0, 24), None)
    return Simulation(model, policy, seed=3, horizon=2500).run(qs).questions


def test_affinity_keeps_follow_ups_on_the_host_that_holds_their_lecture():
    routed = [q for q in _lecture_day("affinity") if q.follow_up]
    balanced = [q for q in _lecture_day("least-loaded") if q.follow_up]
    assert all(q.hit for q in routed)  # about 50 lectures a host: each host's share fits its 80
    assert sum(bool(q.hit) for q in balanced) < len(balanced) / 2
    # A miss pays the cold prefill before its first token.
    assert max(q.first_token or 0 for q in routed) < 1.0
    assert statistics.median(q.first_token or 0 for q in balanced) > 2.0


def test_spot_interruptions_cost_only_the_lectures_of_the_hosts_that_went():
    routed = [q for q in _lecture_day("affinity", spot=1.0) if q.follow_up]
    hits = sum(bool(q.hit) for q in routed) / len(routed)
    assert 0.6 < hits < 1.0  # a replacement starts cold; the other hosts keep their lectures
