"""Run by `uwsgi --plugins python3 --pyrun` (see venv_key.py), inside the
Python that uWSGI's plugin embeds: writes one line, MARKER then JSON, saying
which interpreter that is. Imports nothing of the package: it runs as a
script, in uWSGI's interpreter, not in the tool's."""
import json
import os
import sys
import sysconfig

MARKER = "uwsgi-deploy-embedded-python "

if __name__ == "__main__":
    facts = {
        "version": sys.version,
        "hexversion": sys.hexversion,
        "implementation": sys.implementation.name,
        "cache_tag": sys.implementation.cache_tag,
        "soabi": sysconfig.get_config_var("SOABI"),
        "multiarch": sysconfig.get_config_var("MULTIARCH"),
        "base_prefix": sys.base_prefix,
        "bindir": sysconfig.get_config_var("BINDIR"),
        "ldlibrary": sysconfig.get_config_var("LDLIBRARY"),
    }
    # os.write: uWSGI's worker may exit without flushing sys.stdout
    os.write(1, (MARKER + json.dumps(facts, sort_keys=True) + "\n").encode())
