"""A Modbus RTU slave, served by pymodbus on an inner pty and relayed to the outer one.

pymodbus opens ports by path, while the simulator owns the pty master it shows to
the agent. So pymodbus serves an inner pty; the runner relays bytes between the two
masters and applies faults on the way out, and the outer pty can be unplugged while
the slave keeps running, as a sensor behind an unplugged USB-RS485 adapter does.
"""

import asyncio
import os
import threading
import tty
from typing import Any, Dict, List, Optional

from firmware_bridge.modbus_map import RegisterMap, encode_value, parse_register_map
from simulator.sensors.devices import Device, Values

# The register map of the virtual flood/noise/rain station (slave 1).
DEFAULT_MAP = """\
[[registers]]
name = "water_level"
address = 1
register = 0
function = "holding"
type = "uint16"
scale = 0.1
unit = "cm"

[[registers]]
name = "noise"
address = 1
register = 1
function = "holding"
type = "int16"
scale = 0.1
unit = "dB"

[[registers]]
name = "rain"
address = 1
register = 2
function = "holding"
type = "float32"
unit = "mm"

[[registers]]
name = "temperature"
address = 1
register = 0
function = "input"
type = "int16"
scale = 0.1
unit = "degC"
"""

BLOCK = 32  # registers 0..31 in each table


class ModbusDevice(Device):
    driver = "modbus"
    defaults = {"water_level": 120.0, "noise": 55.0, "rain": 2.5, "temperature": 29.5}

    def __init__(self, values: Values, interval_s: float = 1.0, map_text: str = DEFAULT_MAP,
                 baud: int = 9600) -> None:
        super().__init__(values, interval_s)
        self.map_text = map_text
        self.regmap: RegisterMap = parse_register_map(map_text, "simulated map")
        self.baud = baud
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.inner_master, self._inner_slave = master, slave
        self.inner_path = os.ttyname(slave)
        self._thread: Optional[threading.Thread] = None

    def _words(self, function: str, address: int) -> Dict[int, int]:
        now_values = self.values.now(_clock())
        out: Dict[int, int] = {}
        for reg in self.regmap.registers:
            if reg.function == function and reg.address == address and reg.name in now_values:
                for i, word in enumerate(encode_value(now_values[reg.name], reg)):
                    out[reg.number + i] = word
        return out

    async def _action(self, address: int, func_code: int, start: int, req_address: int,
                      count: int, registers: List[int], set_values: Any) -> None:
        function = "holding" if func_code in (3, 6, 16) else "input"
        for number, word in self._words(function, address).items():
            if 0 <= number - start < len(registers):
                registers[number - start] = word
        return None

    def _serve(self) -> None:
        from pymodbus.framer import FramerType
        from pymodbus.server import StartAsyncSerialServer
        from pymodbus.simulator.simdata import SimData
        from pymodbus.simulator.simdevice import SimDevice
        from pymodbus.simulator.simutils import DataType

        def table(bits: bool) -> List[Any]:
            kind = DataType.BITS if bits else DataType.REGISTERS
            return [SimData(0, count=BLOCK, values=False if bits else 0, datatype=kind)]

        units = sorted({r.address for r in self.regmap.registers})

        def action_for(unit: int) -> Any:
            async def action(*args: Any) -> None:
                return await self._action(unit, *args)

            return action

        devices = [SimDevice(unit, simdata=(table(True), table(True), table(False), table(False)),
                             action=action_for(unit)) for unit in units]
        asyncio.run(StartAsyncSerialServer(context=devices, port=self.inner_path,
                                           framer=FramerType.RTU, baudrate=self.baud))

    def start(self, now: float) -> List[bytes]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="modbus-slave", daemon=True)
            self._thread.start()
        return []

    def on_bytes(self, data: bytes, now: float) -> List[bytes]:
        os.write(self.inner_master, data)  # requests go to pymodbus unchanged
        return []

    def tick(self, now: float) -> List[bytes]:
        try:
            answer = os.read(self.inner_master, 4096)
        except (BlockingIOError, OSError):
            return []
        return [answer] if answer else []


def _clock() -> float:
    import time

    return time.monotonic()
