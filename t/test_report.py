"""What the pusher sees (report.py): the output of what a stage runs is
indented under the stage, whatever pieces it comes in. Pure logic."""
import io

from uwsgi_deploy.report import SAY, STAGE, WARN, Indented, Reporter


def test_output_under_a_stage_is_indented_line_by_line():
    sink = io.BytesIO()
    out = Indented(sink)
    for piece in (b"Resolved 1 package", b" in 3ms\nInstalled", b" 1 package\n\n", b"+ pkg-a==1.0\n"):
        out.write(piece)
    assert sink.getvalue().decode().splitlines() == [
        SAY + "Resolved 1 package in 3ms", SAY + "Installed 1 package", "", SAY + "+ pkg-a==1.0"]


def test_a_reporter_writes_stage_say_and_warn_lines_and_indents_what_a_stage_runs():
    stream = io.TextIOWrapper(io.BytesIO(), write_through=True)
    report = Reporter(stream)
    report.stage("Running setup")
    report.binary_stream().write(b"building\n")
    report.say("setup done (0.10 s)")
    report.warn("setup: exit status 1")
    stream.buffer.seek(0)
    assert stream.buffer.read().decode().splitlines() == [
        STAGE + "Running setup", SAY + "building", SAY + "setup done (0.10 s)", WARN + "setup: exit status 1"]
    assert (STAGE, SAY, WARN) == ("-----> ", "       ", " !     ")
