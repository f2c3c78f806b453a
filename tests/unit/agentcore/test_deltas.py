"""The rule that joins an answer's pieces into fewer `answerDelta` pushes (agentcore/deltas.py),
on an injected clock: first piece at once, a sentence's end at once, otherwise at most the
contract's delay after the oldest held piece."""

from __future__ import annotations

from synapscribe import contract
from synapscribe.agentcore.deltas import DeltaCoalescer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_piece_goes_at_once_then_pieces_are_held() -> None:
    clock = Clock()
    c = DeltaCoalescer(max_delay=0.5, clock=clock)
    assert not c and c.due() is None and not c.ready()
    c.add("The")
    assert c.ready() and c.due() == 100.0
    assert c.take() == "The" and not c
    clock.now = 100.05
    c.add(" Calvin")
    clock.now = 100.1
    c.add(" cycle")
    assert not c.ready()
    assert c.due() == 100.55  # the oldest held piece's time plus the bound


def test_held_text_goes_once_the_oldest_piece_reaches_the_bound() -> None:
    clock = Clock()
    c = DeltaCoalescer(max_delay=0.5, clock=clock)
    c.add("A")
    c.take()
    clock.now = 101.0
    c.add(" long")
    clock.now = 101.49
    c.add(" sentence")
    assert not c.ready()
    clock.now = 101.5
    assert c.ready() and c.take() == " long sentence"
    assert c.due() is None


def test_a_completed_sentence_goes_at_once_with_what_was_held() -> None:
    clock = Clock()
    c = DeltaCoalescer(max_delay=0.5, clock=clock)
    c.add("Rubisco")
    c.take()
    clock.now = 100.1
    c.add(" fixes carbon")
    clock.now = 100.2
    assert not c.ready()
    c.add(". It", ends_sentence=True)
    assert c.ready() and c.due() == 100.1
    assert c.take() == " fixes carbon. It"
    c.add(" is")  # a new hold starts after the push
    assert not c.ready() and c.due() == 100.7


def test_the_end_of_the_text_sends_what_is_held_at_once() -> None:
    clock = Clock()
    c = DeltaCoalescer(max_delay=0.5, clock=clock)
    c.add("One")
    c.take()
    c.add(" two")
    assert not c.ready()
    c.end()
    assert c.ready() and c.take() == " two"
    c.end()  # nothing held: nothing due
    assert c.due() is None and not c.ready()


def test_empty_pieces_hold_nothing() -> None:
    c = DeltaCoalescer(max_delay=0.5, clock=Clock())
    c.add("")
    assert not c and c.due() is None
    assert c.take() == ""
    c.add("first")  # an empty take did not count as the first push
    assert c.ready()


def test_the_default_bound_is_the_contracts_and_the_contract_states_it() -> None:
    assert DeltaCoalescer().max_delay == contract.ANSWER_DELTA_MAX_DELAY_SECONDS
    doc = contract.AnswerDelta.__doc__ or ""
    assert f"{contract.ANSWER_DELTA_MAX_DELAY_SECONDS:g} s" in doc
