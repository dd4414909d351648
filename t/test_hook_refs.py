"""Which pushed ref deploys: the pre-receive hook's pure logic (no git, no
Emperor): git's `old new ref` lines, and the deploy branch's commit among them."""
import pytest

from uwsgi_deploy import DeployError
from uwsgi_deploy.checkout import ZERO_COMMIT
from uwsgi_deploy.hook import commit_to_deploy, parse_updates

A, B, C = "a" * 40, "b" * 40, "c" * 40
MAIN, MASTER, TOPIC = "refs/heads/main", "refs/heads/master", "refs/heads/topic"


def test_git_lines_become_old_new_ref():
    assert parse_updates([f"{A} {B} {MAIN}\n", f"{ZERO_COMMIT} {C} refs/tags/v1"]) == [
        (A, B, MAIN), (ZERO_COMMIT, C, "refs/tags/v1")]


@pytest.mark.parametrize("line", ["", f"{A} {B}", f"{A} {B} {MAIN} extra"])
def test_a_line_that_is_not_three_fields_is_refused_naming_it(line):
    with pytest.raises(DeployError, match="unexpected input from git: "):
        parse_updates([line])


def test_the_deploy_branch_deploys_and_other_refs_do_not():
    assert commit_to_deploy([(A, B, TOPIC), (A, C, MAIN)], [MAIN]) == (MAIN, A, C)
    assert commit_to_deploy([(A, B, TOPIC), (ZERO_COMMIT, C, "refs/tags/v1")], [MAIN]) is None
    assert commit_to_deploy([], [MAIN, MASTER]) is None


def test_of_two_deploy_branches_pushed_at_once_the_first_listed_deploys():
    updates = [(A, B, MASTER), (A, C, MAIN)]
    assert commit_to_deploy(updates, [MAIN, MASTER]) == (MAIN, A, C)
    assert commit_to_deploy(updates, [MASTER, MAIN]) == (MASTER, A, B)


def test_a_new_branch_deploys_its_commit():
    assert commit_to_deploy([(ZERO_COMMIT, B, MAIN)], [MAIN]) == (MAIN, ZERO_COMMIT, B)


def test_deleting_a_deploy_branch_is_refused_and_deleting_another_is_not():
    with pytest.raises(DeployError, match=r"^refusing to delete refs/heads/main: it is the deploy branch$"):
        commit_to_deploy([(A, B, TOPIC), (A, ZERO_COMMIT, MAIN)], [MAIN])
    assert commit_to_deploy([(A, ZERO_COMMIT, TOPIC)], [MAIN]) is None
