"""The benchmark's timeline: nginx's access log read per second, drawn as SVG."""
import xml.etree.ElementTree as ElementTree

from conftest import write
import timeline


def test_buckets_count_each_request_in_the_second_it_ended_and_flag_failures(world):
    log = write(f"{world}/access.log", "100.2 200 0.010\n100.9 200 0.030\n101.5 502 0.001\n"
                "garbage line\n103.0 499 4.000\n99.0 200 0.1\n")
    records = timeline.read_access_log(log)
    assert len(records) == 5            # the garbage line is skipped
    series = timeline.buckets(records, 100.0, 104.0)
    assert [b["requests"] for b in series] == [2, 1, 0, 1]
    assert [b["failed"] for b in series] == [0, 1, 0, 1]
    assert series[0]["p50"] == 0.010 and series[0]["p99"] == 0.030
    assert series[2]["p50"] is None


def test_the_svg_marks_every_deploy_and_every_failed_second_and_is_well_formed():
    series = timeline.buckets([(0.5, 200, 0.002), (1.5, 502, 0.001), (2.5, 200, 3.0)], 0.0, 3.0)
    drawing = timeline.svg(series, [(0.2, 0.4, 1.0), (1.2, 1.3, 2.5)], "t <&> title")
    root = ElementTree.fromstring(drawing)        # escaped title: still well-formed XML
    namespace = "{http://www.w3.org/2000/svg}"
    bands = [r for r in root.iter(namespace + "rect") if r.get("fill") == "#dbe8ff"]
    assert len(bands) == 2
    red = [line for line in root.iter(namespace + "line") if line.get("stroke") == "red"]
    assert len(red) == 1
    assert "1 failed" in drawing and "2 deploys" in drawing
