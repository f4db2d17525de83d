"""A tick that stops work on a chosen call: the geometry stages' cancel tests share it."""


class Stop(Exception):
    pass


def stop_at(call: int):
    """A tick that raises Stop on its `call`-th call; .calls counts them."""
    def tick():
        tick.calls += 1
        if tick.calls == call:
            raise Stop
    tick.calls = 0
    return tick
