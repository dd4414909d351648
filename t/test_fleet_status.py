"""What a fleet serves (fleet.FleetStatus, parse_answers): the verdict from
the hosts' answers, pure logic with no host, ssh or playbook."""
import json

from uwsgi_deploy.fleet import FleetStatus, HostStatus, parse_answers

V1, V2 = "app-0123456789ab", "app-ba9876543210"


def status(*hosts):
    return FleetStatus("app", [HostStatus(*h) for h in hosts])


def test_every_host_on_one_version_is_not_split():
    fleet = status(("h1", V1, True, None), ("h2", V1, True, None))
    assert not fleet.split and fleet.live == V1
    assert fleet.verdict() == f"every host serves {V1}"
    assert fleet.lines() == [f"h1    {V1}  up", f"h2    {V1}  up"]


def test_hosts_on_different_versions_are_a_split_naming_each():
    fleet = status(("h1", V1, True, None), ("h2", V2, False, None), ("h3", V1, True, None))
    assert fleet.split and fleet.live is None
    assert fleet.verdict() == f"SPLIT: the hosts disagree: {V1} on h1, h3; {V2} on h2"
    assert fleet.lines()[1] == f"h2    {V2}  down"


def test_a_host_that_did_not_answer_makes_a_split_even_if_the_rest_agree():
    fleet = status(("h1", V1, True, None), ("host-two", None, False, "ssh: connection refused"))
    assert fleet.split and fleet.live is None
    assert fleet.verdict() == f"SPLIT: the hosts disagree: {V1} on h1; host-two did not answer"
    assert fleet.lines() == [f"h1        {V1}  up", "host-two  ?  ssh: connection refused"]


def test_nothing_live_anywhere_agrees_and_one_host_with_nothing_is_a_split():
    assert status(("h1", None, False, None), ("h2", None, False, None)).verdict() == "every host serves nothing"
    fleet = status(("h1", V1, True, None), ("h2", None, False, None))
    assert fleet.verdict() == f"SPLIT: the hosts disagree: {V1} on h1; nothing on h2"
    assert fleet.lines()[1] == "h2    nothing live"


def test_an_inventory_without_hosts_says_so():
    fleet = status()
    assert fleet.verdict() == "no hosts" and fleet.live is None


def test_answers_become_statuses_in_inventory_order():
    fleet = parse_answers("app", {
        "h2": {"ok": True, "stdout": json.dumps({"apps": [{"name": "other", "live": V2},
                                                          {"name": "app", "live": V1, "answers_ping": True}]})},
        "h1": {"ok": False, "error": "unreachable"},
        "h3": {"ok": True, "stdout": json.dumps({"apps": [{"name": "other", "live": V2}]})},
        "h4": {"ok": False},
    })
    assert fleet.hosts == [HostStatus("h2", V1, True, None), HostStatus("h1", None, False, "unreachable"),
                           HostStatus("h3", None, False, "no app app there"),
                           HostStatus("h4", None, False, "no answer")]
    assert fleet.as_dict()["split"] is True
    assert [h["host"] for h in fleet.as_dict()["hosts"]] == ["h2", "h1", "h3", "h4"]
