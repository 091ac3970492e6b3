"""Scenarios on both runtimes: the same therapy gives the same volume and the same alarms
under CPython (C core via cffi) and real MicroPython (reference core).  Also checks the
main-job report and plot.  The scenarios are the files sim/scenarios/<name>.json.
"""

import pytest

from host_tools import sim_report as report
from sim.scenario_data import list_scenarios, load_scenario


@pytest.fixture(scope="module")
def runs():
    out = {}
    for name in ("picc_occlusion", "air_bubble"):
        out[name] = (report.run_cpython(name), report.run_micropython(name))
    return out


@pytest.mark.parametrize("name", ["picc_occlusion", "air_bubble"])
def test_cpython_and_micropython_agree(runs, name):
    cpy, mpy = runs[name]
    assert cpy["runtime"] == "cpython" and mpy["runtime"] == "micropython"
    assert mpy["core_backend"] == "reference"
    assert report.compare(cpy, mpy) == []
    assert abs(cpy["delivered_nl"] - mpy["delivered_nl"]) <= cpy["ustep_volume_pl"] // 1000
    assert [a["raised_s"] for a in cpy["alarms"]] == [a["raised_s"] for a in mpy["alarms"]]


def test_occlusion_scenario_stops_then_resumes_SR_CORE_3(runs):
    cpy, _ = runs["picc_occlusion"]
    occ = [a for a in cpy["alarms"] if a["name"] == "OCCLUSION DOWNSTREAM"]
    assert len(occ) == 1
    # 10 mL/h into a 1.33 uL/mmHg line: the 300 mmHg threshold would need ~144 s; the
    # trend (SR-CORE-3: 30 mmHg over a cam turn, rising every quarter) stops it in ~20 s
    assert 5 <= occ[0]["latency_s"] <= 60
    assert occ[0]["cleared_s"] == 4530          # acknowledged after the clamp opened
    # delivered = 10 mL/h over the time the pump ran, exact to one microstep
    ran_s = 7200 - (4530 - occ[0]["raised_s"])
    assert abs(cpy["delivered_nl"] - 10000 * 1000 * ran_s // 3600) <= 16 * 1000 * 3
    assert abs(cpy["pumped_ul"] - cpy["delivered_nl"] / 1000.0) <= 50.0


def test_air_scenario_catches_the_bubble_SR_CORE_5(runs):
    cpy, _ = runs["air_bubble"]
    air = [a for a in cpy["alarms"] if a["name"].startswith("AIR")]
    assert len(air) == 1 and air[0]["latency_s"] <= 30


def test_report_and_plot_written(runs, tmp_path):
    cpy, _ = runs["picc_occlusion"]
    cpy = dict(cpy, wall_s=0.5)
    text = report.report_text(cpy)
    assert "Delivered (core accounting)" in text and "after the cause" in text
    png = tmp_path / "plot.png"
    report.plot(cpy, str(png))
    assert png.stat().st_size > 10000
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_every_scenario_is_well_formed():
    """The files in sim/scenarios/ (schema and refusals: tests/test_scenario_data.py)."""
    names = list_scenarios()
    assert {"picc_occlusion", "air_bubble", "continuous_24h"} <= set(names)
    for name in names:
        spec = load_scenario(name)
        assert spec["duration_s"] > 0 and spec["preset"] in ("picc", "peripheral"), name
        for event in spec["events"]:
            assert 0 <= event[0] < spec["duration_s"], (name, event)


@pytest.mark.parametrize("preset,rate_ul_per_h", [("picc", 1000), ("picc", 10000),
                                                  ("peripheral", 100000)])
def test_no_false_occlusion_alarm_over_24h_with_sensor_noise_PT_4(preset, rate_ul_per_h):
    """24 h with 2 mmHg sensor noise at the lowest threshold (2 psi): zero alarms."""
    from hal.sim import make_sim_hal
    from firmware.app import PumpApp
    from sim.world import World
    world = World(preset=preset, seed=11)
    app = PumpApp(make_sim_hal(world))
    app.boot()
    app.program_continuous(rate_ul_per_h, 9999000, occlusion_limit_mmhg=104)
    app.start()
    worst_mmhg = 0
    for _ in range(86400):
        app.cycle()
        world.advance(1000)
        worst_mmhg = max(worst_mmhg, app.last_downstream_mmhg)
    assert not app.alarms.active, app.alarms.active
    assert app.core.faults == 0 and app.core.phase == 2, worst_mmhg
    assert worst_mmhg < 104
