"""The installers that build a dependency environment: uv (the default: it
was measured an order of magnitude faster, see README "Dependency
environments") and pip, run from the environment itself. Each creates a venv
for the interpreter uWSGI embeds in a temporary directory and installs the
requirement files into it; finish() then makes the venv work under its final
name (bytecode compiled for that name, no script naming the temporary one)."""
import os
import subprocess

from . import DeployError
from .layout import rewritten_temporary
from .setup_script import run_streaming


def make_installer(name, interpreter, environ):
    return {"uv": Uv, "pip": Pip}[name](interpreter, environ)


class Installer:
    name = None

    def __init__(self, interpreter, environ):
        self.interpreter, self.environ = interpreter, dict(environ)

    def _version(self, argv):
        """The first line argv prints: the installer's exact version."""
        try:
            result = subprocess.run(argv, capture_output=True, text=True, env=self.environ,
                                    stdin=subprocess.DEVNULL, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DeployError(f"{self.name}: cannot run {argv[0]}: {err}") from None
        if result.returncode != 0 or not result.stdout.strip():
            raise DeployError(f"{self.name}: {' '.join(argv)} failed: "
                              f"{(result.stderr.strip().splitlines() or ['no output'])[-1]}")
        return result.stdout.strip().splitlines()[0]

    @staticmethod
    def file_arguments(files):
        """-r/-c arguments for the top-level files; none when nothing is required."""
        if not any(item.top and item.role == "requirement" for item in files):
            return []
        arguments = []
        for item in files:
            if not item.top:
                continue   # the installer reads included files itself
            arguments += ["-r" if item.role == "requirement" else "-c", os.path.abspath(item.path)]
        return arguments


class Uv(Installer):
    name = "uv"

    def __init__(self, interpreter, environ):
        super().__init__(interpreter, environ)
        self.binary = find_uv()
        # never fetch a Python of its own: the environment is for uWSGI's
        self.environ["UV_PYTHON_DOWNLOADS"] = "never"
        # trust the system's CA store, as pip on Debian, git and curl do (a
        # private index or a TLS proxy has its CA there), not uv's own list
        self.environ.setdefault("UV_SYSTEM_CERTS", "1")
        self.identity = self._version([self.binary, "--version"])

    def steps(self, target, files, prompt):
        # relocatable: scripts find their interpreter relative to themselves,
        # so they work once the venv is renamed into place
        yield "uv venv", [self.binary, "venv", "--quiet", "--relocatable", "--prompt", prompt,
                          "--python", self.interpreter.executable, target]
        if self.file_arguments(files):
            yield "uv pip install", [self.binary, "pip", "install", "--python", os.path.join(target, "bin", "python"),
                   *self.file_arguments(files)]


class Pip(Installer):
    name = "pip"

    def __init__(self, interpreter, environ):
        super().__init__(interpreter, environ)
        # the pip a new venv gets is the one ensurepip bundles with the interpreter
        self.identity = self._version([interpreter.executable, "-m", "ensurepip", "--version"])

    def steps(self, target, files, prompt):
        yield "python -m venv", [self.interpreter.executable, "-m", "venv", "--prompt", prompt, target]
        if self.file_arguments(files):
            yield "pip install", [os.path.join(target, "bin", "python"), "-m", "pip", "install", "--no-compile",
                   "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
                   *self.file_arguments(files)]


def find_uv():
    """The uv binary pinned in requirements.txt: the one vendored next to its
    package by `make install` (pip --target), else the one in this venv."""
    try:
        import uv
    except ImportError:
        raise DeployError("uv is not installed: it is pinned in the toolkit's requirements.txt, "
                          "which `make install` vendors (or set DEPLOY_VENV_INSTALLER=pip)") from None
    vendored = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(uv.__file__))), "bin", "uv")
    if os.access(vendored, os.X_OK):
        return vendored
    try:
        return uv.find_uv_bin()
    except FileNotFoundError:
        raise DeployError("uv's package is installed but its binary is not: reinstall the toolkit "
                          "(make install)") from None


def finish(temporary, final, timeout, output, warn):
    """Make the venv built at temporary work once renamed to final: compile
    its bytecode now (nothing writes into it later, and tracebacks name the
    final path), rewrite scripts that name the temporary directory (pip's
    shebangs and activate scripts; uv's relocatable venv has none), and give
    every file the umask's permissions."""
    python = os.path.join(temporary, "bin", "python")
    try:
        run_streaming([python, "-m", "compileall", "-q", "-j", "0", "-s", temporary, "-p", final,
                       os.path.join(temporary, "lib")], temporary, {"PATH": os.defpath}, timeout, output,
                      "compileall")
    except DeployError as err:   # as pip does: a module that does not compile is imported uncompiled
        warn(f"{err}: some modules stay uncompiled")
    old, new = os.fsencode(temporary), os.fsencode(final)
    candidates = [os.path.join(temporary, "pyvenv.cfg")]
    bin_dir = os.path.join(temporary, "bin")
    candidates += [os.path.join(bin_dir, name) for name in sorted(os.listdir(bin_dir))]
    for path in candidates:
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as stream:
            data = stream.read()
        if old not in data:
            continue
        if b"\0" in data:
            raise DeployError(f"{os.path.relpath(path, temporary)} (a binary) names the build "
                              "directory; the environment would not work after its rename")
        mode = os.stat(path).st_mode
        fixed = rewritten_temporary(path)
        with open(fixed, "wb") as stream:
            stream.write(data.replace(old, new))
        os.chmod(fixed, mode)
        os.rename(fixed, path)
    _apply_umask(temporary)


def _apply_umask(root):
    """uv creates some files (its .lock) world-writable whatever the umask;
    the deploy home is private (the tools run with umask 027)."""
    umask = os.umask(0)
    os.umask(umask)
    for top, dirs, files in os.walk(root):
        for path in [top] + [os.path.join(top, name) for name in files]:
            info = os.lstat(path)
            if not os.path.islink(path) and info.st_mode & umask:
                os.chmod(path, info.st_mode & 0o7777 & ~umask)
