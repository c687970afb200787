"""Which join/leave/heartbeat sequences leave a consumer group without an assignment.

``python -m bench.group_probe [--session-ms 3000] [--only NAME]``: starts a Tansu broker on a
free port (or uses ``KAFKA_BOOTSTRAP_SERVERS``), and for each scenario a fresh 4-partition topic
and group. Members are separate processes (``python -m bench.group_probe member ...``: a
kafka-python consumer that prints each assignment as a JSON line), so SIGTERM (clean close,
LeaveGroup) and kill -9 (no LeaveGroup) are the real thing. After each scenario's stop sequence,
new members start and the probe reports how long until every one of them owns partitions
("ready"), or "WEDGED" when none does within 4 x the session timeout.

Finding on Tansu 0.6.0 (kafka-python 3.0.12, session 3000 ms; see README "The embedded broker"):
the group wedges when **the member the broker chose as leader leaves (LeaveGroup) while the
group is forming** (a rebalance in progress: a member just joined or left and the others are
rejoining), or **is expired by missed heartbeats while the group is formed**. Tansu's
``Forming`` leave and ``Formed`` expiry remove the member but keep its id as the leader (only a
``Formed`` leave and a ``Forming`` expiry clear it), so every later JoinGroup names a leader that
no longer exists, nobody gets the member list to compute an assignment, and every SyncGroup
answers REBALANCE_IN_PROGRESS: forever, for this group id, until the broker restarts.
Sequences that do that: stopping two members at once (SIGTERM of a supervisor: the first
LeaveGroup starts a rebalance, the second member, often the leader, leaves during it), or a
member that leaves while a new one is joining. Members that never send LeaveGroup (static
membership, ``group_instance_id``: kafka-python and librdkafka then leave it to the session
timeout) are *expired*, and Tansu's ``Formed`` state keeps an expired leader too: static
membership wedged more often here.

Run 2026-12-01 (2 runs per scenario and mode, restart 0.5 s / 3.0 s after the sequence):

    scenario                                  dynamic            static
    both SIGTERM at once                      4.2 s, 3.7 s       8.2 s, 7.8 s
    one at a time (wait for the survivor)     4.8 s, 3.5 s       WEDGED, WEDGED
    one at a time, 0.3 s apart                6.1 s, WEDGED      9.0 s, WEDGED
    leader leaves while a member joins        WEDGED, 5.4 s      9.1 s, WEDGED
    kill -9 both                              6.0 s, 5.1 s       11.1 s, WEDGED
    kill -9 one, SIGTERM the other            8.2 s, 9.7 s       WEDGED, 9.5 s
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOPIC_PARTITIONS = 4


def member_main(argv: list[str]) -> int:
    """One group member: consume, commit, print assignments until SIGTERM."""
    parser = argparse.ArgumentParser(prog="group_probe member")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--session-ms", type=int, default=3000)
    parser.add_argument("--instance-id", default=None)
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.CRITICAL)
    from kafka import ConsumerRebalanceListener, KafkaConsumer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def say(event: str, **data: Any) -> None:
        print(json.dumps({"t": time.time(), "event": event, **data}), flush=True)

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            say("revoked", partitions=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned: Any) -> None:
            say("assigned", partitions=sorted(tp.partition for tp in assigned))

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        group_instance_id=args.instance_id,
        client_id=args.instance_id or "probe",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=args.session_ms,
        heartbeat_interval_ms=max(args.session_ms // 3, 100),
        api_version=None,
    )
    consumer.subscribe([args.topic], listener=Listener())
    say("started")
    while not stop.is_set():
        polled = consumer.poll(timeout_ms=200)
        if polled:
            consumer.commit()
    consumer.close(autocommit=False)
    say("closed")
    return 0


@dataclass
class Member:
    name: str
    process: subprocess.Popen[str]
    started: float
    assigned_at: float | None = None
    partitions: list[int] = field(default_factory=list)

    def pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if data["event"] == "assigned" and data["partitions"]:
                self.partitions = data["partitions"]
                if self.assigned_at is None:
                    self.assigned_at = data["t"]
            elif data["event"] == "revoked":
                self.partitions = [p for p in self.partitions if p not in data["partitions"]]


class Group:
    def __init__(self, bootstrap: str, session_ms: int, static: bool) -> None:
        self.bootstrap = bootstrap
        self.session_ms = session_ms
        self.static = static
        self.topic = f"probe-{uuid.uuid4().hex[:8]}"
        self.group = f"{self.topic}-g"
        self.members: list[Member] = []
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(self.topic, TOPIC_PARTITIONS, 1)])
        admin.close()

    def start(self, name: str) -> Member:
        cmd = [
            sys.executable,
            "-m",
            "bench.group_probe",
            "member",
            "--bootstrap",
            self.bootstrap,
            "--topic",
            self.topic,
            "--group",
            self.group,
            "--session-ms",
            str(self.session_ms),
        ]
        if self.static:
            cmd += ["--instance-id", f"{self.group}-{name}"]
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        member = Member(name, process, time.time())
        threading.Thread(target=member.pump, daemon=True).start()
        self.members.append(member)
        return member

    def live(self) -> list[Member]:
        return [m for m in self.members if m.process.poll() is None]

    def wait_formed(self, members: list[Member], timeout_s: float) -> float | None:
        """Seconds until every one of ``members`` owns partitions and all partitions are
        owned, or None."""
        start = time.time()
        while time.time() - start < timeout_s:
            owned = sorted(p for m in members for p in m.partitions)
            if all(m.partitions for m in members) and owned == list(range(TOPIC_PARTITIONS)):
                return max(m.assigned_at or start for m in members) - min(
                    m.started for m in members
                )
            time.sleep(0.05)
        return None

    def sigterm(self, member: Member, wait: bool = True) -> None:
        member.process.send_signal(signal.SIGTERM)
        if wait:
            member.process.wait(10)

    def kill(self, member: Member) -> None:
        member.process.kill()
        member.process.wait(10)

    def close(self) -> None:
        for m in self.members:
            if m.process.poll() is None:
                m.process.kill()
                m.process.wait()


Step = Callable[[Group], None]


def _two_up(g: Group) -> list[Member]:
    ms = [g.start("a"), g.start("b")]
    if g.wait_formed(ms, 8 * g.session_ms / 1000) is None:
        raise RuntimeError("the first two members did not form the group")
    return ms


def both_sigterm_at_once(g: Group) -> None:
    """SIGTERM of a 2-process supervisor: both leave within milliseconds."""
    a, b = _two_up(g)
    g.sigterm(a, wait=False)
    g.sigterm(b, wait=False)
    a.process.wait(10)
    b.process.wait(10)


def one_at_a_time(g: Group) -> None:
    """Stop b, wait until a owns everything, then stop a."""
    a, b = _two_up(g)
    g.sigterm(b)
    g.wait_formed([a], 8 * g.session_ms / 1000)
    g.sigterm(a)


def one_at_a_time_no_wait(g: Group) -> None:
    """Stop b, then a 0.3 s later (the survivor is rejoining when it leaves)."""
    a, b = _two_up(g)
    g.sigterm(b)
    time.sleep(0.3)
    g.sigterm(a)


def leave_mid_join(g: Group) -> None:
    """a owns everything; b starts joining; a leaves while the group forms."""
    a = g.start("a")
    g.wait_formed([a], 8 * g.session_ms / 1000)
    b = g.start("b")
    time.sleep(1.0)
    g.sigterm(a)
    g.sigterm(b)


def kill9_both(g: Group) -> None:
    a, b = _two_up(g)
    g.kill(a)
    g.kill(b)


def kill9_one_then_sigterm(g: Group) -> None:
    a, b = _two_up(g)
    g.kill(a)
    time.sleep(g.session_ms / 1000 / 2)
    g.sigterm(b)


SCENARIOS: dict[str, Step] = {
    "both SIGTERM at once": both_sigterm_at_once,
    "one at a time (wait for the survivor)": one_at_a_time,
    "one at a time, 0.3 s apart": one_at_a_time_no_wait,
    "leader leaves while a member joins": leave_mid_join,
    "kill -9 both": kill9_both,
    "kill -9 one, SIGTERM the other mid-rebalance": kill9_one_then_sigterm,
}


def run_scenario(
    bootstrap: str, name: str, step: Step, session_ms: int, static: bool, pause_s: float
) -> dict[str, Any]:
    g = Group(bootstrap, session_ms, static)
    try:
        step(g)
        time.sleep(pause_s)
        fresh = [g.start("a"), g.start("b")]  # same names: same instance ids when static
        ready = g.wait_formed(fresh, 4 * session_ms / 1000)
        return {"scenario": name, "static": static, "pause_s": pause_s, "ready_s": ready}
    finally:
        g.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["member"]:
        return member_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.group_probe")
    parser.add_argument("--session-ms", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", default="")
    parser.add_argument("--modes", default="dynamic,static")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import kafkautil

    with tempfile.TemporaryDirectory() as tmp, kafkautil.broker(Path(tmp)) as (bootstrap, desc, _):
        print(f"broker: {desc} at {bootstrap}; session {args.session_ms} ms", flush=True)
        for name, step in SCENARIOS.items():
            if args.only and args.only not in name:
                continue
            for mode in args.modes.split(","):
                for i in range(args.repeat):
                    pause = (0.5, 3.0)[i % 2]
                    row = run_scenario(
                        bootstrap, name, step, args.session_ms, mode == "static", pause
                    )
                    ready = row["ready_s"]
                    shown = "WEDGED" if ready is None else f"ready in {ready:.1f} s"
                    print(f"{name:48s} {mode:8s} restart after {pause:.1f} s: {shown}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
