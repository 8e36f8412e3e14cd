"""Plantower variants (issue #19): PMS5003T, PMS5003ST, PMS3003 and PMS7003 frames, the
`model` config, frames of another model's length, and a PMS5003T read as a PMS5003."""

import struct
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collectors.registry import build
from agent.collectors.serial_sensors import SerialSensorCollector, no_data_reason
from agent.sensors.drivers import Pms5003Driver
from firmware_bridge import pms
from firmware_bridge.errors import FrameError
from firmware_bridge.framing import StreamDecoder
from simpul_wire.config import parse_config
from simpul_wire.config.sensors import PmsModel
from simpul_wire.errors import ConfigError
from tests.sensors.framer_props import found_at, overlapped_by_other_frame, walk
from tests.sensors.test_collectors import HEAD, gather, health, wait_state


def frame(*words: int, signed_at: int = -1) -> bytes:
    """A data frame built by hand with struct: length field, words, 16-bit byte sum."""
    fmt = "".join("h" if i == signed_at else "H" for i in range(len(words)))
    body = b"\x42\x4d" + struct.pack(">H" + fmt, 2 * len(words) + 2, *words)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


# PMS5003T: PM 5/8/9 (CF=1 and atmospheric), counts 810/232/45/6, 21.2 degC, 55.3 %.
T_FRAME = frame(5, 8, 9, 5, 8, 9, 810, 232, 45, 6, 212, 553, 0, signed_at=10)
T_VALUES = {"pm1_0_cf1": 5.0, "pm2_5_cf1": 8.0, "pm10_cf1": 9.0, "pm1_0": 5.0,
            "pm2_5": 8.0, "pm10": 9.0, "particles_0_3um": 810.0, "particles_0_5um": 232.0,
            "particles_1_0um": 45.0, "particles_2_5um": 6.0, "temperature": 21.2,
            "humidity": 55.3}
# Below freezing: the temperature word is signed (-4.5 degC is 0xFFD3).
T_COLD = frame(5, 8, 9, 5, 8, 9, 810, 232, 45, 6, -45, 901, 0, signed_at=10)
# PMS5003ST: the PMS5003's 12 words, formaldehyde 37 ug/m3, -1.5 degC, 40.0 %, reserved,
# version/error.
ST_FRAME = frame(5, 8, 9, 5, 8, 9, 810, 232, 45, 6, 2, 1, 37, -15, 400, 0, 0,
                 signed_at=13)
# PMS3003: six mass concentrations and three reserved words.
G3_FRAME = frame(4, 7, 9, 4, 7, 9, 0, 0, 0)
# PMS5003 / PMS7003.
PLAIN = frame(5, 8, 8, 5, 8, 8, 810, 232, 45, 6, 0, 0, 0x9700)


class Port:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


@pytest.mark.py39
def test_frame_lengths_match_the_datasheets():
    assert [len(f) for f in (G3_FRAME, PLAIN, T_FRAME, ST_FRAME)] == [24, 32, 32, 40]
    assert [f[3] for f in (G3_FRAME, PLAIN, T_FRAME, ST_FRAME)] == [20, 28, 28, 36]
    assert {name: m.frame_len for name, m in pms.MODELS.items()} == {
        "pms5003": 32, "pms7003": 32, "pms5003t": 32, "pms5003st": 40, "pms3003": 24}


@pytest.mark.py39
@pytest.mark.parametrize(("data", "model", "expected"), [
    (T_FRAME, "pms5003t", T_VALUES),
    (T_COLD, "pms5003t", {**T_VALUES, "temperature": -4.5, "humidity": 90.1}),
    (ST_FRAME, "pms5003st", {"pm2_5": 8.0, "particles_5_0um": 2.0, "particles_10um": 1.0,
                             "formaldehyde": 37.0, "temperature": -1.5, "humidity": 40.0}),
    (G3_FRAME, "pms3003", {"pm1_0_cf1": 4.0, "pm2_5_cf1": 7.0, "pm10_cf1": 9.0,
                           "pm1_0": 4.0, "pm2_5": 7.0, "pm10": 9.0}),
    (PLAIN, "pms7003", {"pm2_5": 8.0, "particles_10um": 0.0}),
])
def test_each_model_decodes(data, model, expected):
    result = pms.decode(data)
    assert result.used == len(data)
    values = result.frame.values(model)
    assert {k: values[k] for k in expected} == pytest.approx(expected)
    assert set(values) == set(pms.MODELS[model].units())  # every value has a unit
    assert "reserved" not in values
    assert pms.implausible(values, model) is None
    # The encoder writes the same bytes from the physical values.
    reserved = struct.unpack(">H", data[-4:-2])[0]
    assert pms.encode_values(values, model, reserved=reserved) == data


@pytest.mark.py39
def test_pms5003t_has_no_5_and_10_um_counts():
    values = pms.decode(T_FRAME).frame.values("pms5003t")
    assert "particles_5_0um" not in values and "particles_10um" not in values
    assert pms.MODELS["pms5003t"].units()["temperature"] == "degC"
    assert pms.MODELS["pms5003t"].units()["humidity"] == "%"
    assert pms.MODELS["pms5003st"].units()["formaldehyde"] == "ug/m3"


@pytest.mark.py39
@pytest.mark.parametrize(("data", "configured", "names"), [
    (ST_FRAME, "pms5003", "pms5003st"),
    (ST_FRAME, "pms3003", "pms5003st"),
    (G3_FRAME, "pms5003", "pms3003"),
    (G3_FRAME, "pms5003t", "pms3003"),
    (PLAIN, "pms5003st", "pms5003, pms7003 or pms5003t"),
    (T_FRAME, "pms3003", "pms5003, pms7003 or pms5003t"),
])
def test_wrong_length_names_the_model_it_matches(data, configured, names):
    reading = pms.decode(data).frame
    with pytest.raises(FrameError, match=f"{len(data)}-byte frames come from a {names}, "
                                         f"not a {configured}"):
        reading.values(configured)
    if "," not in names:
        assert f'set model = "{names}"' in pms.wrong_model(len(data), configured)


@pytest.mark.py39
def test_driver_refuses_another_models_frames_and_says_which():
    driver = Pms5003Driver("active", 1.0, "pms5003")
    assert driver.feed(ST_FRAME * 3, Port(), 0.0) == []
    assert driver.counters.frames_ok == 0
    assert driver.counters.bytes_dropped == 3 * 40  # dropped, not taken as readings
    problem = driver.problem()
    assert problem is not None and problem.startswith("3 frames refused: ")
    assert "pms5003st" in problem
    reason = no_data_reason("/dev/ttyUSB0", 12, driver, driver.counters)
    assert reason.startswith("no readings from /dev/ttyUSB0 in 12 s: 3 frames refused")
    assert 'set model = "pms5003st"' in reason
    # A frame of the configured model's length is a reading again; the problem clears.
    assert len(driver.feed(PLAIN, Port(), 1.0)) == 1
    assert driver.problem() is None


@pytest.mark.py39
@pytest.mark.parametrize(("model", "data"), [("pms5003t", T_FRAME), ("pms5003st", ST_FRAME),
                                             ("pms3003", G3_FRAME), ("pms7003", PLAIN)])
def test_driver_reads_its_model(model, data):
    driver = Pms5003Driver("active", 1.0, model)
    [values] = driver.feed(data, Port(), 0.0)
    assert values == pms.decode(data).frame.values(model)
    assert driver.problem() is None and driver.implausible(values) is None


@pytest.mark.py39
def test_pms5003t_read_as_pms5003_is_implausible():
    driver = Pms5003Driver("active", 1.0, "pms5003")
    [values] = driver.feed(T_FRAME, Port(), 0.0)
    assert values["particles_5_0um"] == 212.0  # the 21.2 degC, silently a count
    why = driver.implausible(values)
    assert why is not None
    assert "more particles beyond 5.0 um (212) than beyond 2.5 um (6)" in why
    assert 'set model = "pms5003t"' in why
    # Cold: -4.5 degC is 65491 as an unsigned count.
    [cold] = Pms5003Driver("active", 1.0, "pms5003").feed(T_COLD, Port(), 0.0)
    assert "pms5003t" in (pms.implausible(cold, "pms5003") or "")
    # The real PMS5003 frame is fine, and so is the same frame read as a PMS5003T.
    assert pms.implausible(pms.decode(PLAIN).frame.values(), "pms5003") is None
    assert pms.implausible(pms.decode(T_FRAME).frame.values("pms5003t"), "pms5003t") is None


@pytest.mark.py39
def test_pms3003_takes_no_commands():
    driver, port = Pms5003Driver("active", 1.0, "pms3003"), Port()
    driver.on_open(port, 0.0)
    driver.poll(port, 100.0)
    assert port.written == b""
    pms5003, port = Pms5003Driver("passive", 1.0), Port()
    pms5003.on_open(port, 0.0)
    pms5003.poll(port, 0.0)
    assert pms.read_command() in port.written


@pytest.mark.py39
def test_encoder_bounds():
    with pytest.raises(FrameError):
        pms.encode_reading((1,) * 12)
    with pytest.raises(FrameError, match="temperature"):
        pms.encode_values({"temperature": 4000.0}, "pms5003t")
    with pytest.raises(FrameError, match="unknown PMS model"):
        pms.encode_values({}, "pms9999")


# -- config -------------------------------------------------------------------------

def _pms(extra: str = "") -> str:
    return HEAD + f'[[collectors]]\ntype = "pms5003"\nname = "air"\nport = "/dev/x"\n{extra}'


@pytest.mark.py39
def test_model_config():
    # The contract's choices are the framer's models.
    assert typing.get_args(PmsModel) == tuple(pms.MODELS)
    assert parse_config(_pms()).collectors[0].model == "pms5003"  # old configs stay valid
    for name in ("pms5003", "pms7003", "pms5003t", "pms5003st", "pms3003"):
        section = parse_config(_pms(f'model = "{name}"\n')).collectors[0]
        assert section.model == name
        collector = build(section)
        assert isinstance(collector, SerialSensorCollector)
        assert collector.driver.model.name == name
    with pytest.raises(ConfigError, match="model"):
        parse_config(_pms('model = "pms9003"\n'))
    with pytest.raises(ConfigError, match="pms3003 takes no commands"):
        parse_config(_pms('model = "pms3003"\nmode = "passive"\n'))


@pytest.mark.py39
def test_catalogue_follows_the_model():
    units = build(parse_config(_pms('model = "pms5003st"\n')).collectors[0]).units()
    assert units["air_formaldehyde"] == "ug/m3"
    assert units["air_temperature"] == "degC" and units["air_humidity"] == "%"
    assert units["air_particles_10um"] == "count/0.1L"
    t_units = build(parse_config(_pms('model = "pms5003t"\n')).collectors[0]).units()
    assert "air_particles_5_0um" not in t_units and t_units["air_temperature"] == "degC"
    plain = build(parse_config(_pms()).collectors[0]).units()
    assert "air_temperature" not in plain and plain["air_pm2_5"] == "ug/m3"


# -- framer properties over every length --------------------------------------------

models = st.sampled_from(sorted(pms.MODELS))


def _words(name: str):
    return st.tuples(*[st.integers(0, 0xFFFF)] * len(pms.MODELS[name].fields))


@pytest.mark.py39
@settings(deadline=None, max_examples=200)
@given(models.flatmap(_words))
def test_roundtrip_every_length(ws):
    data = pms.encode_reading(ws)
    result = pms.decode(data)
    assert result.used == len(data) == 2 * len(ws) + 6
    assert result.frame.words == ws


@pytest.mark.py39
@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=120), models.flatmap(_words), st.binary(max_size=48))
def test_every_length_in_noise_is_found(before, ws, after):
    data = pms.encode_reading(ws)
    steps = walk(pms.decode, before + data + after)
    got = found_at(steps, len(before))
    if got is None:
        assert overlapped_by_other_frame(steps, len(before))
    else:
        assert got.words == ws


@pytest.mark.py39
@pytest.mark.parametrize("fake", [b"\x42\x4d\x00\x24", b"\x42\x4d\x00\x24\x00\x01"])
def test_a_false_long_header_does_not_hide_a_frame_at_the_end(fake):
    """Noise that reads as a 40-byte header, then a whole 32-byte frame and nothing more:
    the framer does not wait for the 40 bytes, it resumes at the frame inside."""
    steps = walk(pms.decode, fake + PLAIN)
    assert found_at(steps, len(fake)) is not None
    dec = StreamDecoder(pms.decode)
    assert [f.words for f in dec.feed(fake + PLAIN)] == [pms.decode(PLAIN).frame.words]
    # A real 40-byte frame split anywhere still waits for its rest.
    for cut in range(1, 40):
        dec = StreamDecoder(pms.decode)
        assert dec.feed(ST_FRAME[:cut]) == []
        assert len(dec.feed(ST_FRAME[cut:])) == 1
        assert dec.counters.bytes_dropped == 0


# -- the simulator's device, in process ---------------------------------------------

@pytest.mark.parametrize("model", sorted(pms.MODELS))
def test_simulated_device_emits_each_model(model):
    from simulator.sensors.devices import PmsDevice, Values

    device = PmsDevice(Values({**PmsDevice.defaults, "temperature": -4.5}, vary=False),
                       1.0, model)
    data = device.frame(0.0)
    assert len(data) == pms.MODELS[model].frame_len
    [values] = Pms5003Driver("active", 1.0, model).feed(data, Port(), 0.0)
    assert values["pm2_5"] == 12.0
    assert pms.implausible(values, model) is None
    if "temperature" in pms.MODELS[model].fields:
        assert values["temperature"] == -4.5 and values["humidity"] == 55.0
    if model == "pms5003st":
        assert values["formaldehyde"] == 12.0
    answers = device.on_bytes(pms.mode_command(active=False), 0.0)
    assert answers == ([] if model == "pms3003" else [pms.encode_answer(pms.CMD_MODE, 0)])


# -- end to end: simpul-sim on a pty, the collector on the other side ---------------

def _collector(link: str, model: str):
    config = parse_config(HEAD + '[[collectors]]\ntype = "pms5003"\nname = "air"\n'
                          f'port = "{link}"\nmodel = "{model}"\nstale_after_s = 2.0\n')
    return build(config.collectors[0])


@pytest.mark.slow
def test_e2e_pms5003t_configured_right(sensor_sim):
    sim = sensor_sim("pms5003", "--model", "pms5003t", "--interval", "0.2",
                     "--values", "pm2_5=12,pm10=20,pm1_0=5,temperature=-3.5,humidity=61.5")
    collector = _collector(sim.link, "pms5003t")
    collector.start()
    try:
        acc = wait_state(collector, "ok")
        assert acc.metrics["air_temperature"] == pytest.approx(-3.5)
        assert acc.metrics["air_humidity"] == pytest.approx(61.5)
        assert acc.metrics["air_pm2_5"] == pytest.approx(12.0)
        assert "air_particles_5_0um" not in acc.metrics
        assert set(acc.metrics) | set(health(collector).metrics) <= set(collector.units())
    finally:
        collector.close()


@pytest.mark.slow
def test_e2e_pms5003t_read_as_pms5003_turns_stale(sensor_sim):
    sim = sensor_sim("pms5003", "--model", "pms5003t", "--interval", "0.2",
                     "--values", "pm2_5=12,pm10=20,pm1_0=5,temperature=21.2,humidity=55")
    collector = _collector(sim.link, "pms5003")
    collector.start()
    try:
        acc = wait_state(collector, "stale")
        reason = acc.sources["air"].reason or ""
        assert "more particles beyond 5.0 um (212)" in reason
        assert 'set model = "pms5003t"' in reason
        assert health(collector).sources["air"].state == "stale"
    finally:
        collector.close()


@pytest.mark.slow
def test_e2e_pms5003st_configured_as_pms5003_names_it(sensor_sim):
    sim = sensor_sim("pms5003", "--model", "pms5003st", "--interval", "0.2")
    collector = _collector(sim.link, "pms5003")
    collector.start()
    try:
        def refused():
            acc = gather(collector)
            return "pms5003st" in (acc.sources["air"].reason or "")

        from tests.sensors.conftest import wait_for

        wait_for(refused, 15, "a reason naming the pms5003st")
        acc = gather(collector)
        assert acc.sources["air"].state == "unavailable"
        assert "40-byte frames come from a pms5003st" in acc.sources["air"].reason
        assert "air_pm2_5" not in acc.metrics
    finally:
        collector.close()
