"""A record the broker refuses for good (its topic's limit is below max_message_bytes) is not
retried: its input's publish dead letter is published instead, before the commit (no broker:
the fake transport refuses records over a size, as such a broker does)."""

from __future__ import annotations

import threading

from streamscore import jsonio
from streamscore.config import KafkaConfig
from streamscore.wire import OutRecord, headers_dict
from tests.worker.fake_transport import FakeTransport
from tests.worker.test_processor import DEST, records, serving
from worker.commit import publish_in_transaction, publish_then_commit
from worker.processor import BatchProcessor
from worker.refusals import RefusedReplacer
from worker.sizes import record_size
from worker.transport import Refused, TransactionRefused


def second_of_four_too_large(register, model_store, demo_set):
    """Four events scored, the second's prediction too large for the topic (not for ours): the
    batch, its result, a fake transport refusing records over 20,000 bytes, and the replacer
    that dead-letters refused records to ``dlq``."""
    register()
    model = serving(model_store, passthrough=("label",))
    values = [jsonio.dumps(demo_set.event(i)) for i in range(4)]
    values[1] = jsonio.dumps(demo_set.event(1, label="z" * 30_000))  # fits ours, not the topic's
    batch = records(values)
    processor = BatchProcessor(DEST)
    result = processor.process(batch, model)
    transport = FakeTransport({("in", 0): values})
    transport.refuse_over_bytes = 20_000
    replace = RefusedReplacer(processor, model, batch, result, KafkaConfig(dead_letter_topic="dlq"))
    return batch, result, transport, replace


def three_scored(register, model_store, demo_set):
    """Three events scored by the registered model: the model, the input values, the batch,
    the processor and its result."""
    register()
    model = serving(model_store)
    values = [jsonio.dumps(demo_set.event(i)) for i in range(3)]
    batch = records(values)
    processor = BatchProcessor(DEST)
    return model, values, batch, processor, processor.process(batch, model)


def test_refused_prediction_is_replaced_by_its_publish_dead_letter_then_committed(
    register, model_store, demo_set
):
    batch, result, transport, replace = second_of_four_too_large(register, model_store, demo_set)
    assert publish_then_commit(transport, result.records, batch, threading.Event(), replace)
    outputs = [r for r in transport.published if r.topic == "out"]
    [dead] = [r for r in transport.published if r.topic == "dlq"]
    assert [jsonio.loads(r.value)["id"] for r in outputs] == ["e-0", "e-2", "e-3"]
    h = headers_dict(dead.headers)
    assert (h["streamscore.error.stage"], h["streamscore.error.class"]) == ("publish", "Refused")
    assert h["streamscore.source.offset"] == "1"
    assert "MSG_SIZE_TOO_LARGE" in h["streamscore.error.message"]
    assert h["streamscore.value.truncated"] == "true"  # its dead letter: refused again if whole
    assert transport.commits == [{("in", 0): 4}]
    assert result.scored == 3 and result.dead_letters == {"publish": 1}


def test_exactly_once_a_refused_prediction_aborts_once_then_its_dead_letter_commits_in_order(
    register, model_store, demo_set
):
    batch, result, transport, replace = second_of_four_too_large(register, model_store, demo_set)

    assert publish_in_transaction(transport, result.records, batch, threading.Event(), replace)

    # Refused twice (the prediction, then its dead letter with the whole value), not forever.
    assert (transport.transactions, transport.aborted) == (3, 2)
    assert [
        (r.topic, headers_dict(r.headers)["streamscore.source.offset"]) for r in transport.published
    ] == [
        ("out", "0"),
        ("dlq", "1"),  # in its input's place
        ("out", "2"),
        ("out", "3"),
    ]
    assert headers_dict(transport.published[1].headers)["streamscore.value.truncated"] == "true"
    assert transport.commits == [{("in", 0): 4}]
    assert result.scored == 3 and result.dead_letters == {"publish": 1}


def test_exactly_once_a_record_refused_whatever_replaces_it_is_dropped_and_the_rest_commits(
    register, model_store, demo_set
):
    _, values, batch, _, result = three_scored(register, model_store, demo_set)
    transport = FakeTransport({("in", 0): values})
    transport.refuse_over_bytes = 1  # every record, dead letters included

    assert publish_in_transaction(
        transport, result.records, batch, threading.Event(), lambda refused: []
    )

    assert transport.aborted == 1 and transport.published == []
    assert transport.commits == [{("in", 0): 3}]  # the partition goes on


def test_refused_shadow_prediction_is_dropped_never_a_production_dead_letter(
    register, model_store, demo_set
):
    from prometheus_client import CollectorRegistry

    from worker.shadow import ShadowMetrics, ShadowScorer

    register()
    model = serving(model_store)
    values = [jsonio.dumps(demo_set.event(i)) for i in range(4)]
    batch = records(values)
    processor = BatchProcessor(DEST)
    result = processor.process(batch, model)
    # a shadow (here a copy of production under another version number) with records too large
    # for the shadow topic's limit
    register(promote=False)
    shadow = type(model)(
        model_store.load(2), model.builder.policy, alias="candidate", seq=1, allowed_extra=("id",)
    )
    scorer = ShadowScorer("shadow", 1.0, 10_000, ShadowMetrics(CollectorRegistry()))
    shadowed = scorer.score(shadow, model, result)
    result.records.extend(shadowed)
    transport = FakeTransport({("in", 0): values})
    longest = max(record_size(r) for r in result.records if r.topic == "out")
    assert len(shadowed) == 1 and record_size(shadowed[0]) > longest  # the 4, by column
    transport.refuse_over_bytes = longest  # predictions fit, shadow records do not
    kafka = KafkaConfig(dead_letter_topic="dlq", shadow_topic="shadow")
    replace = RefusedReplacer(processor, model, batch, result, kafka)
    assert publish_then_commit(transport, result.records, batch, threading.Event(), replace)
    assert sorted(r.topic for r in transport.published) == ["out"] * 4
    assert result.scored == 4 and not result.dead_letters
    assert transport.commits == [{("in", 0): 4}]


class RefusesWhatItHolds(FakeTransport):
    """Refuses every transaction that still holds a record of ``refused_keys``; counts them."""

    def __init__(self, logs, refused: list[OutRecord]) -> None:
        super().__init__(logs)
        self.refusals = refused
        self.attempts: list[int] = []

    def publish_transaction(self, records, offsets, stop):
        self.attempts.append(len(records))
        if any(r in self.refusals for r in records) or (
            records and self.refusals[0].key == b"ghost"
        ):
            raise TransactionRefused([Refused(r, "POLICY_VIOLATION") for r in self.refusals])
        return super().publish_transaction(records, offsets, stop)


def test_exactly_once_a_replacement_that_changes_nothing_stops_the_rounds_and_drops_the_record(
    register, model_store, demo_set
):
    _, values, batch, _, result = three_scored(register, model_store, demo_set)
    bad = result.records[1]
    transport = RefusesWhatItHolds({("in", 0): values}, [bad])

    # a replacer whose "dead letter" is the very record refused: no progress
    assert publish_in_transaction(
        transport, result.records, batch, threading.Event(), lambda refused: [bad]
    )
    assert transport.attempts == [3, 2]  # not one more round per replacement round
    assert [r for r in transport.published] == [result.records[0], result.records[2]]
    assert transport.commits == [{("in", 0): 3}]


def test_exactly_once_a_refusal_of_records_it_was_not_given_still_ends_with_a_commit(
    register, model_store, demo_set
):
    model, values, batch, processor, result = three_scored(register, model_store, demo_set)
    ghost = OutRecord("out", b"ghost", b"{}", [])  # of no source, not in the batch
    transport = RefusesWhatItHolds({("in", 0): values}, [ghost])
    replace = RefusedReplacer(processor, model, batch, result, KafkaConfig(dead_letter_topic="dlq"))

    assert publish_in_transaction(transport, result.records, batch, threading.Event(), replace)
    assert transport.attempts == [3, 0]  # no endless rounds
    assert transport.commits == [{("in", 0): 3}]
