"""The check that a call is refused with a sentence: a KilnError of the right code whose
message holds the words that matter."""

import pytest

from engine.errors import KilnError


def refusal(default_code: str):
    """refused(call, *words, code=default_code) -> the KilnError `call()` raised, once its
    code is `code` and its message holds every one of `words`."""
    def refused(call, *words, code=default_code) -> KilnError:
        with pytest.raises(KilnError) as info:
            call()
        assert info.value.code == code, info.value.message
        assert all(w in info.value.message for w in words), info.value.message
        return info.value
    return refused
