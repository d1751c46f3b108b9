"""The verdict of a run: SIGNED OFF only when the whole suite ran, nothing failed or errored, and
nothing the policy requires went unchecked; every other run says what it is, why, and exits non-zero."""

import pytest

from seatrials.verdict import RunFacts, fail_on_new, judge


def facts(*outcomes, **kwargs) -> RunFacts:
    return RunFacts(outcomes=[(o, area, f"test_{i}") for i, (o, area) in enumerate(outcomes)], **kwargs)


PASS, SKIP_AWS = ("passed", "network"), ("skipped", "aws")


@pytest.mark.parametrize("run,verdict,code", [
    (facts(PASS), "SIGNED OFF", 0),
    (facts(PASS, SKIP_AWS), "SIGNED OFF", 0),  # lenient by default
    (facts(PASS, SKIP_AWS, required=("aws",)), "NOT SIGNED OFF", 1),
    (facts(PASS, SKIP_AWS, required=("harbor",)), "SIGNED OFF", 0),
    (facts(PASS, ("not applicable", "aws"), required=("aws",)), "SIGNED OFF", 0),  # nothing of it to verify
    (facts(PASS, ("failed", "network")), "NOT SIGNED OFF", 1),
    (facts(PASS, ("error", "kubelet")), "NOT SIGNED OFF", 1),
    (facts(SKIP_AWS), "NOTHING CHECKED", 5),
    (facts(), "NOTHING CHECKED", 5),
    (facts(PASS, selection=["60 cases deselected (-k 'pod_to_pod')"]), "PARTIAL", 6),
    (facts(PASS, ("failed", "network"), selection=["-k x"]), "NOT SIGNED OFF", 1),
    (facts(PASS, PASS, stopped=["the probes never ran: probe image x cannot be pulled on any node"]),
     "INCOMPLETE", 3),
    (facts(PASS, ("failed", "network"), stopped=["lost the lock"]), "INCOMPLETE", 3),
    (facts(PASS, interrupted="signal SIGTERM", stopped=["x"]), "INTERRUPTED", 2),
])
def test_verdict_and_exit_code(run, verdict, code):
    judgement = judge(run)
    assert (judgement.verdict, judgement.exit_code) == (verdict, code), judgement.reasons
    assert judgement.reasons  # every verdict says why


def test_what_is_not_applicable_is_said_and_never_counted_as_unverified():
    judgement = judge(facts(PASS, ("not applicable", "apiserver"), required=("apiserver",)))
    assert judgement.not_verified == {}
    assert judgement.reasons == ["the whole suite ran: 1 passed, nothing failed, 1 not applicable"]


def test_the_reasons_name_what_stopped_the_run_and_what_was_not_verified():
    judgement = judge(facts(PASS, SKIP_AWS, stopped=["the probes never ran: image x cannot be pulled"]))
    assert judgement.reasons == ["the probes never ran: image x cannot be pulled"]
    assert judgement.not_verified == {"aws": ["test_1"]}
    required = judge(facts(PASS, SKIP_AWS, required=("aws",)))
    assert required.reasons == ["required area aws not checked: 1 cases (test_1 ...)"]
    partial = judge(facts(PASS, selection=["not collected: test_aws.py"]))
    assert partial.reasons == ["only a selection ran: not collected: test_aws.py"]


@pytest.mark.parametrize("run", [facts(PASS), facts(PASS, ("failed", "network")), facts(PASS, stopped=["x"])])
def test_a_caveat_follows_the_reasons_of_every_verdict_and_does_not_change_it(run):
    caveat = "Kubernetes v1.38.0 is newer than 1.37, the newest minor this suite is proved on"
    plain, limited = judge(run), judge(RunFacts(**{**vars(run), "caveats": [caveat]}))
    assert (limited.verdict, limited.exit_code) == (plain.verdict, plain.exit_code)
    assert limited.reasons == plain.reasons + [caveat]


FAILED = ("failed", "network")


@pytest.mark.parametrize("run,new,excused,code,line", [
    (facts(PASS, FAILED), 0, True, 0, "exit 0 although NOT SIGNED OFF: every failure (1) was failing"),
    (facts(PASS, FAILED), 1, False, 1, "1 new failure since the baseline; exit 1"),
    (facts(PASS, FAILED), None, False, 1, "no baseline, so every failure counts as new"),
    (facts(PASS, FAILED, selection=["-k x"]), 0, False, 1, "does not apply: only a selection ran"),
    (facts(PASS, FAILED, SKIP_AWS, required=("aws",)), 0, False, 1, "does not apply: required area aws not checked"),
    (facts(PASS, FAILED, stopped=["lost the lock"]), 0, False, 3, "does not apply: INCOMPLETE keeps exit 3"),
    (facts(PASS, FAILED, interrupted="Ctrl-C"), 0, False, 2, "does not apply: INTERRUPTED keeps exit 2"),
    (facts(PASS, selection=["-k x"]), 0, False, 6, "does not apply: PARTIAL keeps exit 6"),
    (facts(SKIP_AWS), 0, False, 5, "does not apply: NOTHING CHECKED keeps exit 5"),
    (facts(PASS), 0, False, 0, "nothing failed"),
])
def test_fail_on_new_excuses_only_a_whole_run_whose_failures_are_all_old(run, new, excused, code, line):
    judgement = judge(run)
    verdict = judgement.verdict
    said = fail_on_new(judgement, run, new, old=1)
    assert line in said
    assert bool(judgement.excused) == excused and judgement.exit_code == code
    assert judgement.verdict == verdict  # the verdict itself never changes
