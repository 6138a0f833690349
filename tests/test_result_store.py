"""The result store shared by replicas (``ui.result_store``) and the job runner's use of it."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import pickle
import time
from pathlib import Path

import pytest
from deploy_support import redis_server

from ui import jobs, result_store
from ui.jobs import JobRunner
from ui.result_store import DirectoryStore, RedisStore

# --- the directory store ---------------------------------------------------------------------------------------


def test_directory_store_round_trips_a_result_with_its_timing(tmp_path):
    store = DirectoryStore(tmp_path, namespace="n")
    table = {"layer": ["fc1", "fc2"], "drop": [0.1, 2.5]}
    store.put("sensitivity|digits-mlp|one|{}", table, at=1234.5, seconds=2.0)
    assert store.get("sensitivity|digits-mlp|one|{}") == (table, 1234.5, 2.0)
    assert store.get("sensitivity|digits-mlp|all|{}") is None


def test_two_replicas_on_one_directory_read_each_others_results(tmp_path):
    a, b = DirectoryStore(tmp_path, namespace="n"), DirectoryStore(tmp_path, namespace="n")
    a.put("sweep|x", [1, 2, 3], at=1.0, seconds=0.5)
    assert b.get("sweep|x") == ([1, 2, 3], 1.0, 0.5)
    assert (tmp_path / ".secret").stat().st_mode & 0o077 == 0  # the shared secret is the owner's only


def test_another_code_version_neither_reads_nor_overwrites_entries(tmp_path):
    old, new = DirectoryStore(tmp_path, namespace="v1"), DirectoryStore(tmp_path, namespace="v2")
    old.put("k", "old result", at=0.0, seconds=1.0)
    assert new.get("k") is None
    new.put("k", "new result", at=0.0, seconds=1.0)
    assert old.get("k")[0] == "old result"


def test_delete_removes_an_entry_for_every_replica(tmp_path):
    a, b = DirectoryStore(tmp_path, namespace="n"), DirectoryStore(tmp_path, namespace="n")
    a.put("qat|run", "stopped run", at=0.0, seconds=1.0)
    b.delete("qat|run")
    b.delete("qat|never-there")
    assert a.get("qat|run") is None


def _write_many(path: str, writer: int, rounds: int) -> None:
    store = DirectoryStore(path, namespace="n")
    for i in range(rounds):
        store.put("same-key", {"writer": writer, "i": i, "payload": bytes(200_000)}, at=float(i), seconds=0.1)


def test_concurrent_writers_of_one_key_leave_a_whole_entry_every_reader_can_read(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 40)) for w in range(3)]
    for p in procs:
        p.start()
    reader = DirectoryStore(tmp_path, namespace="n")
    seen = 0
    while any(p.is_alive() for p in procs):
        entry = reader.get("same-key")
        if entry is not None:  # never a torn or half-written file: whole, signed, or not there yet
            assert len(entry[0]["payload"]) == 200_000
            seen += 1
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    final = reader.get("same-key")[0]
    assert final["i"] == 39 and seen > 0
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_the_directory_is_pruned_least_recently_used_first_to_its_bound(tmp_path):
    store = DirectoryStore(tmp_path, namespace="n", max_bytes=1_000_000)
    for i in range(4):
        store.put(f"k{i}", bytes(200_000), at=0.0, seconds=0.0)
        time.sleep(0.02)  # distinct modification times
    assert store.get("k0") is not None  # read: now the most recently used
    time.sleep(0.02)
    for i in range(4, 6):
        store.put(f"k{i}", bytes(200_000), at=0.0, seconds=0.0)
        time.sleep(0.02)
    total = sum(f.stat().st_size for f in tmp_path.glob("*.qe"))
    assert total <= 1_000_000
    assert store.get("k0") is not None and store.get("k5") is not None
    assert store.get("k1") is None  # the oldest not read since went first


def test_a_result_too_large_for_the_store_is_not_written(tmp_path, monkeypatch):
    monkeypatch.setattr(result_store, "MAX_ENTRY_BYTES", 10_000)
    store = DirectoryStore(tmp_path, namespace="n")
    store.put("big", bytes(20_000), at=0.0, seconds=0.0)
    assert store.get("big") is None and not list(tmp_path.glob("*.qe"))


EXPLODED: list[str] = []


def _explode(tag: str) -> str:
    EXPLODED.append(tag)
    return tag


class _Bomb:
    """Unpickling this calls :func:`_explode`: proof that a forged entry was (not) unpickled."""

    def __reduce__(self):
        return (_explode, ("unpickled",))


def test_a_forged_entry_is_ignored_and_never_unpickled(tmp_path):
    store = DirectoryStore(tmp_path, namespace="n")
    store.put("k", "honest", at=0.0, seconds=0.0)
    path = next(tmp_path.glob("*.qe"))
    body = pickle.dumps(("k", _Bomb(), 0.0, 0.0))
    path.write_bytes(b"QEST1" + bytes(32) + body)  # right layout, signature made without the secret
    assert store.get("k") is None
    assert EXPLODED == []
    pickle.loads(body)  # the bomb is live: unpickled, it would have gone off
    assert EXPLODED == ["unpickled"]
    EXPLODED.clear()


def test_a_truncated_entry_is_ignored(tmp_path):
    store = DirectoryStore(tmp_path, namespace="n")
    store.put("k", list(range(1000)), at=0.0, seconds=0.0)
    path = next(tmp_path.glob("*.qe"))
    path.write_bytes(path.read_bytes()[:-10])
    assert store.get("k") is None


def test_replicas_with_different_secrets_do_not_trust_each_other(tmp_path):
    DirectoryStore(tmp_path, namespace="n", secret=b"one").put("k", 1, at=0.0, seconds=0.0)
    assert DirectoryStore(tmp_path, namespace="n", secret=b"two").get("k") is None
    assert DirectoryStore(tmp_path, namespace="n", secret=b"one").get("k") == (1, 0.0, 0.0)


def test_a_directory_that_can_not_be_written_is_logged_once_and_the_caller_carries_on(tmp_path, caplog):
    store = DirectoryStore(tmp_path / "results", namespace="n")
    (tmp_path / "results").chmod(0o500)
    if os.access(tmp_path / "results", os.W_OK):  # root writes anywhere: take the directory away instead
        store.path = tmp_path / "gone" / "results"
    try:
        with caplog.at_level(logging.WARNING, logger="quantization_explorer"):
            store.put("a", 1, at=0.0, seconds=0.0)
            store.put("b", 2, at=0.0, seconds=0.0)
        assert store.get("a") is None
        assert sum("result store" in r.getMessage() for r in caplog.records) == 1
    finally:
        (tmp_path / "results").chmod(0o700)


def test_the_code_fingerprint_follows_the_code_and_weights(tmp_path):
    for folder in ("quantlib", "ui", "sample_models"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.py").write_text("x = 1\n")
    first = result_store.code_fingerprint(tmp_path)
    assert result_store.code_fingerprint(tmp_path) == first
    (tmp_path / "sample_models" / "w.safetensors").write_bytes(b"weights")
    second = result_store.code_fingerprint(tmp_path)
    (tmp_path / "quantlib" / "a.py").write_text("x = 2\n")
    assert len({first, second, result_store.code_fingerprint(tmp_path)}) == 3


def test_from_env_chooses_redis_over_a_directory_and_none_without_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("QE_REDIS_URL", raising=False)
    monkeypatch.delenv("QE_STORE_DIR", raising=False)
    assert result_store.from_env() is None
    monkeypatch.setenv("QE_STORE_DIR", str(tmp_path))
    store = result_store.from_env()
    assert isinstance(store, DirectoryStore) and store.namespace == result_store.code_fingerprint()
    monkeypatch.setenv("QE_REDIS_URL", "redis://127.0.0.1:1/0")
    assert isinstance(result_store.from_env(), RedisStore)


def test_a_store_that_can_not_be_set_up_leaves_the_server_working_without_one(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("QE_STORE_DIR", str(tmp_path / "a-file" / "results"))
    assert jobs._configured_store() is None  # noqa: SLF001


# --- the Redis store ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


def test_redis_store_round_trips_and_sets_a_time_to_live(redis_url):
    import redis

    a = RedisStore(redis_url, namespace="n", ttl_seconds=3600)
    b = RedisStore(redis_url, namespace="n")
    a.put("pareto|minilm|{}", {"front": [1, 2]}, at=5.0, seconds=3.0)
    assert b.get("pareto|minilm|{}") == ({"front": [1, 2]}, 5.0, 3.0)
    client = redis.Redis.from_url(redis_url)
    name = next(k for k in client.keys("qe:n:*"))
    assert 0 < client.ttl(name) <= 3600
    b.delete("pareto|minilm|{}")
    assert a.get("pareto|minilm|{}") is None
    assert RedisStore(redis_url, namespace="other").get("pareto|minilm|{}") is None


def test_redis_store_ignores_a_forged_value(redis_url):
    import redis

    store = RedisStore(redis_url, namespace="forged")
    store.put("k", "honest", at=0.0, seconds=0.0)
    client = redis.Redis.from_url(redis_url)
    name = next(k for k in client.keys("qe:forged:*"))
    client.set(name, b"QEST1" + bytes(32) + pickle.dumps(("k", _Bomb(), 0.0, 0.0)))
    assert store.get("k") is None and EXPLODED == []


def test_an_unreachable_redis_costs_one_short_timeout_then_is_skipped(caplog):
    from deploy_support import free_port

    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", namespace="n")
    with caplog.at_level(logging.WARNING, logger="quantization_explorer"):
        assert store.get("k") is None
        start = time.monotonic()
        for _ in range(50):
            assert store.get("k") is None
            store.put("k", 1, at=0.0, seconds=0.0)
        assert time.monotonic() - start < 1.0  # skipped while down, not 100 timeouts
    assert sum("result store" in r.getMessage() for r in caplog.records) == 1


# --- the job runner with a store ---------------------------------------------------------------------------------

CALLS: list[str] = []


def _counted(name: str, progress: jobs.Progress) -> str:
    CALLS.append(name)
    return f"result of {name}"


def _runner_pair(store_a, store_b):
    return JobRunner(workers=1, in_process=True, store=store_a), JobRunner(workers=1, in_process=True, store=store_b)


@pytest.fixture(params=["directory", "redis"])
def two_stores(request, tmp_path):
    if request.param == "directory":
        yield DirectoryStore(tmp_path, namespace="n"), DirectoryStore(tmp_path, namespace="n")
    else:
        with redis_server() as url:
            yield RedisStore(url, namespace="n"), RedisStore(url, namespace="n")


def test_a_result_computed_by_one_replica_is_served_by_another_without_recomputing(two_stores):
    a, b = _runner_pair(*two_stores)
    CALLS.clear()
    try:
        a.wait(a.submit("sweep|digits-mlp|2,3", _counted, ("sweep",)), 30)
        a.flush_store()
        job = b.submit("sweep|digits-mlp|2,3", _counted, ("sweep",))
        assert job.is_done and job.result == "result of sweep"
        assert CALLS == ["sweep"] and b.store_hits == 1
        assert b.finished("sweep|digits-mlp|2,3").seconds == a.finished("sweep|digits-mlp|2,3").seconds
    finally:
        a.shutdown()
        b.shutdown()


def test_machine_measurements_and_unkept_results_stay_on_their_replica(two_stores):
    a, b = _runner_pair(*two_stores)
    CALLS.clear()
    try:
        a.wait(a.submit("speed|minilm", _counted, ("speed",)), 30)
        a.wait(a.submit("qat|stopped", _counted, ("qat",), keep=lambda r: False), 30)
        a.flush_store()
        assert b.finished("speed|minilm") is None and b.finished("qat|stopped") is None
        b.wait(b.submit("speed|minilm", _counted, ("speed",)), 30)
        assert CALLS == ["speed", "qat", "speed"]
    finally:
        a.shutdown()
        b.shutdown()


def test_forgetting_a_result_forgets_it_for_every_replica(two_stores):
    a, b = _runner_pair(*two_stores)
    try:
        a.wait(a.submit("qat|run", _counted, ("qat",)), 30)
        a.flush_store()
        b.forget("qat|run")
        assert JobRunner(workers=1, in_process=True, store=two_stores[0]).finished("qat|run") is None
    finally:
        a.shutdown()
        b.shutdown()


def test_the_process_runner_takes_its_store_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("QE_STORE_DIR", str(tmp_path / "store"))
    previous = jobs.set_runner(None)
    try:
        runner = jobs.runner()
        assert isinstance(runner.store, DirectoryStore) and Path(runner.store.path) == tmp_path / "store"
        runner.shutdown()
    finally:
        jobs.set_runner(previous)
