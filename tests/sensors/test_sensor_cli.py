"""`simpul-agent sensor read` against `simpul-sim sensor` on real ptys, every driver."""

import json

import pytest

from tests.sensors.conftest import agent_cli

pytestmark = pytest.mark.slow

CASES = [
    ("pms5003", [], "pm2_5=35,pm10=51,pm1_0=20", {"pm2_5": 35.0, "pm10": 51.0, "pm1_0": 20.0}),
    ("pms5003", ["--mode", "passive"], "pm2_5=7,pm10=9,pm1_0=3", {"pm2_5": 7.0, "pm10": 9.0}),
    ("sds011", [], "pm2_5=123.6,pm10=261.8", {"pm2_5": 123.6, "pm10": 261.8}),
    ("sds011", ["--mode", "query"], "pm2_5=4.2,pm10=8.8", {"pm2_5": 4.2, "pm10": 8.8}),
    ("bridge", [], "water_level=87.5,noise=61.2",
     {"water_level": 87.5, "noise": 61.2, "temperature": 29.5}),
    ("modbus", None, "water_level=143.2,noise=-3.5,rain=12.25",
     {"water_level": 143.2, "noise": -3.5, "rain": 12.25, "temperature": 29.5}),
]


@pytest.mark.parametrize(("driver", "extra", "values", "expected"), CASES)
def test_read_json(sensor_sim, driver, extra, values, expected):
    sim = sensor_sim(driver, "--values", values, "--interval", "0.3")
    if extra is None:
        extra = ["--map", sim.map_file]
    done = agent_cli("sensor", "read", "--driver", driver, "--port", sim.link,
                     "--count", "2", "--timeout", "15", "--interval", "0.3", "--json", *extra)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        reading = json.loads(line)
        assert reading["driver"] == driver
        assert reading["ts"].endswith("Z")
        for name, value in expected.items():
            assert reading["values"][name] == pytest.approx(value)


@pytest.mark.parametrize("driver", ["pms5003", "sds011", "bridge", "modbus"])
def test_read_through_faults(sensor_sim, driver):
    sim = sensor_sim(driver, "--values", "pm2_5=12,pm10=20,water_level=50", "--interval", "0.1",
                     "--garbage", "0.5", "--split", "0.5", "--bad-checksum", "0.3",
                     "--seed", "7")
    extra = ["--map", sim.map_file, "--interval", "0.2"] if driver == "modbus" else []
    done = agent_cli("sensor", "read", "--driver", driver, "--port", sim.link,
                     "--count", "8", "--timeout", "20", "--json", *extra)
    assert done.returncode == 0, done.stderr
    readings = [json.loads(line)["values"] for line in done.stdout.splitlines()]
    assert len(readings) == 8
    key = "water_level" if driver in ("bridge", "modbus") else "pm2_5"
    expected = 50.0 if driver in ("bridge", "modbus") else 12.0
    assert all(r[key] == expected for r in readings)


def test_wrong_driver_says_what_to_check(sensor_sim):
    sim = sensor_sim("pms5003")
    done = agent_cli("sensor", "read", "--driver", "sds011", "--port", sim.link,
                     "--timeout", "2.5")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "no readings from" in done.stderr
    assert "bytes but no valid frame" in done.stderr
    assert "baud" in done.stderr and "mode" in done.stderr and "wiring" in done.stderr


def test_silent_sensor_says_what_to_check(sensor_sim):
    sim = sensor_sim("sds011", "--silence-after", "0", "--silence-for", "60")
    done = agent_cli("sensor", "read", "--driver", "sds011", "--port", sim.link,
                     "--timeout", "1.5")
    assert done.returncode == 1
    assert "no bytes at all" in done.stderr and "wiring" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_port(tmp_path):
    done = agent_cli("sensor", "read", "--driver", "pms5003", "--port",
                     str(tmp_path / "nothing"), "--timeout", "1")
    assert done.returncode == 1
    assert "cannot open" in done.stderr and "dialout" in done.stderr
    assert "Traceback" not in done.stderr


def test_modbus_without_map(tmp_path):
    done = agent_cli("sensor", "read", "--driver", "modbus", "--port", str(tmp_path / "x"))
    assert done.returncode == 1 and "--map" in done.stderr


def test_modbus_wrong_slave_address(sensor_sim, tmp_path):
    sim = sensor_sim("modbus")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[[registers]]\nname = 'level'\naddress = 9\nregister = 0\n")
    done = agent_cli("sensor", "read", "--driver", "modbus", "--port", sim.link,
                     "--map", str(wrong), "--timeout", "2")
    assert done.returncode == 1
    assert "slave address" in done.stderr and "Traceback" not in done.stderr


def test_doctor_checks_serial_ports(sensor_sim, tmp_path):
    sim = sensor_sim("sds011")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[device]\ndevice_id = "doc-1"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[[collectors]]\ntype = "sds011"\nname = "air"\nport = "{sim.link}"\n'
        f'[[collectors]]\ntype = "pms5003"\nname = "gone"\nport = "{tmp_path / "nothing"}"\n')
    done = agent_cli("doctor", "--config", str(config))
    assert done.returncode == 1
    assert f"ok   port of air: {sim.link} opens" in done.stdout
    assert "FAIL port of gone: cannot open" in done.stdout
    assert "dialout" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_pms_models_match_the_contract():
    from typing import get_args

    from agent.cli.sensor import PMS_MODELS
    from simpul_wire.config.sensors import PmsModel

    assert list(get_args(PmsModel)) == PMS_MODELS


def test_read_a_pms5003t_by_its_model_and_warn_when_read_as_a_5003(sensor_sim):
    sim = sensor_sim("pms5003", "--model", "pms5003t", "--values",
                     "pm2_5=12,pm10=20,temperature=21.2,humidity=55", "--interval", "0.3")
    done = agent_cli("sensor", "read", "--driver", "pms5003", "--model", "pms5003t",
                     "--port", sim.link, "--count", "1", "--timeout", "15", "--json")
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout.splitlines()[0])["values"]
    assert values["temperature"] == pytest.approx(21.2)
    assert values["humidity"] == pytest.approx(55.0)
    assert done.stderr == ""
    as_5003 = agent_cli("sensor", "read", "--driver", "pms5003", "--port", sim.link,
                        "--count", "1", "--timeout", "15", "--json")
    assert as_5003.returncode == 0, as_5003.stderr
    assert "warning:" in as_5003.stderr and 'model = "pms5003t"' in as_5003.stderr


def test_model_refused_for_other_drivers_and_for_a_passive_pms3003(tmp_path):
    for args, said in ((["--driver", "sds011", "--model", "pms5003t"], "only the pms5003"),
                       (["--driver", "pms5003", "--model", "pms3003", "--mode", "passive"],
                        "pms3003")):
        done = agent_cli("sensor", "read", "--port", str(tmp_path / "none"), *args)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert said in done.stderr, done.stderr
