"""Service server (SR-SVC-1): every request answered, bad frames get error replies."""
import struct

from firmware import protocol as p
from firmware.app import PumpApp
from hal.sim import make_sim_hal
from sim.world import World


def make():
    world = World(seed=5)
    hal = make_sim_hal(world)
    app = PumpApp(hal)
    app.boot()
    return app, world, hal.service_port


def exchange(app, port, data):
    port.feed(data)
    app.cycle()
    while port.rx:            # the server reads a bounded amount per cycle
        app.cycle()
    return p.FrameDecoder().feed(port.drain())


def test_identify_and_status():
    app, world, port = make()
    replies = exchange(app, port, p.encode_frame(1, p.IDENTIFY) + p.encode_frame(2, p.STATUS))
    assert replies[0][0] == 1 and replies[0][1] == p.IDENTIFY | p.REPLY
    assert replies[0][2].startswith(b"AMB-PUMP-1")
    st = p.decode_status(replies[1][2])
    assert st["log_seq"] == app.log.last_seq


def test_log_read_returns_verified_records():
    app, world, port = make()
    replies = exchange(app, port, p.encode_frame(3, p.LOG_READ, struct.pack("<IH", 1, 100)))
    last, n = struct.unpack_from("<IH", replies[0][2], 0)
    assert last == app.log.last_seq and n == last
    from firmware import eventlog
    assert eventlog.decode(replies[0][2][6:38])[0] == 1


def test_malformed_unknown_and_bad_args_get_error_replies_SR_SVC_1():
    app, world, port = make()
    app.program_continuous(10000, 20000)
    app.start()
    bad = bytearray(p.encode_frame(4, p.STATUS))
    bad[2] ^= 0xFF
    data = (bytes(bad) + b"\xff" * 3000 + b"\x00" + p.encode_frame(5, 0x55) +
            p.encode_frame(6, p.LOG_READ, b"\x01") + p.encode_frame(7, p.CLOCK_SET, b"x") +
            p.encode_frame(8, p.STATUS))
    replies = exchange(app, port, data)
    errors = [r for r in replies if isinstance(r, tuple) and r[1] == p.ERROR]
    codes = [p.parse_error(r[2])[0] for r in errors]
    assert p.E_OVERSIZE in codes and p.E_UNKNOWN_COMMAND in codes
    assert p.E_BAD_ARGS in codes and p.E_NOT_AUTHORISED in codes
    assert replies[-1][0] == 8 and replies[-1][1] == p.STATUS | p.REPLY
    # delivery was never interrupted
    for _ in range(60):
        app.cycle()
        world.advance(1000)
    assert app.core.phase == 2 and app.core.faults == 0
