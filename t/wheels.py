"""Tiny wheels the tests install from a local directory (find-links, no
index), so a real installer builds real environments without the network."""
import base64
import hashlib
import os
import zipfile

MODULE = '''VERSION = "{version}"


def main():
    print("{name} {version} from", __file__)
'''


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(directory, name, version, requires=()):
    """directory/NAME-VERSION-py3-none-any.whl: module NAME with VERSION and
    main(), a console script NAME-tool, and Requires-Dist lines."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    files = {
        f"{name}/__init__.py": MODULE.format(name=name, version=version),
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: uwsgi-deploy-tests\n"
                              "Root-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": f"[console_scripts]\n{name}-tool = {name}:main\n",
    }
    record = [_record_line(path, text.encode()) for path, text in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    path = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def local_index_environ(directory):
    """Installer variables that make uv and pip install only from directory
    (and ignore this machine's own pip configuration)."""
    return {"UV_FIND_LINKS": directory, "UV_OFFLINE": "1",
            "PIP_FIND_LINKS": directory, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull}
