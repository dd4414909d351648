"""Settings: defaults under DEPLOY_HOME, config file, DEPLOY_* environment."""
import os

import pytest

from conftest import write
from uwsgi_deploy import DeployError
from uwsgi_deploy.settings import load


def test_defaults_live_under_home():
    s = load({"HOME": "/home/app"})
    assert s.home == "/home/app"
    assert (s.vassals_dir, s.run_dir, s.log_dir) == ("/home/app/vassals", "/home/app/run", "/home/app/log")
    assert s.env_file == "/home/app/environment.sh"
    assert s.log_file == "/home/app/deploy.log"
    assert s.emperor_stats == "/home/app/run/emperor.stats"
    assert (s.branch, s.ping_path, s.keep) == ("", "/ping", 4)
    assert all(src == "default" for src in s.sources.values())


def test_moving_home_moves_the_paths_with_it():
    s = load({"HOME": "/h", "DEPLOY_HOME": "/srv/deploy"})
    assert s.vassals_dir == "/srv/deploy/vassals"
    assert s.emperor_stats == "/srv/deploy/run/emperor.stats"


def test_config_file_then_environment(world):
    write(os.path.join(world, "deploy.conf"),
          "# settings\nDEPLOY_RUN_DIR=/r\nDEPLOY_KEEP=7\nDEPLOY_PROBE_TIMEOUT=2.5\n")
    s = load({"HOME": world, "DEPLOY_KEEP": "9"})
    assert s.run_dir == "/r" and s.emperor_stats == "/r/emperor.stats"
    assert s.keep == 9 and s.sources["keep"] == "environment"
    assert s.probe_timeout == 2.5 and s.sources["probe_timeout"] == os.path.join(world, "deploy.conf")


def test_config_path_can_be_chosen(world):
    conf = write(os.path.join(world, "other.conf"), "DEPLOY_BRANCH=production\n")
    assert load({"HOME": "/h", "DEPLOY_CONFIG": conf}).branch == "production"


def test_tilde_means_this_environments_home():
    assert load({"HOME": "/h", "DEPLOY_LOG_DIR": "~/logs"}).log_dir == "/h/logs"


@pytest.mark.parametrize("text, message", [
    ("DEPLOY_KEPP=3\n", "deploy.conf:1: unknown setting DEPLOY_KEPP"),
    ("\nDEPLOY_KEEP=many\n", "DEPLOY_KEEP must be a number"),
    ("DEPLOY_KEEP=-1\n", "DEPLOY_KEEP must not be negative"),
    ("DEPLOY_PING_PATH=ping\n", "DEPLOY_PING_PATH must start with '/'"),
    ("DEPLOY_PROBE_VIA=tcp\n", "DEPLOY_PROBE_VIA must be one of http, socket, not 'tcp'"),
    ("what is this\n", "deploy.conf:1: cannot parse this line"),
    ("DEPLOY_FLEET_BATCH=0\n", "DEPLOY_FLEET_BATCH must be a number of hosts or a percentage"),
    ("DEPLOY_FLEET_BATCH=half\n", "DEPLOY_FLEET_BATCH must be a number of hosts or a percentage"),
])
def test_bad_config_is_an_error_naming_file(world, text, message):
    write(os.path.join(world, "deploy.conf"), text)
    with pytest.raises(DeployError, match=message.replace("(", r"\(")):
        load({"HOME": world})

