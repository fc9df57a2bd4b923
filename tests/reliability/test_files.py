"""Awkward files: symlinks, empty files, shared first lines, thousands of files, no inotify,
compressed rotations. Every line written arrives; nothing is merged, skipped or spun on.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
from pathlib import Path

import orjson
import pytest

from agent.devserver import DevServer
from tests.support.config import CONNECTION
from tests.support.waiting import eventually, settled, wait_until


async def test_kubernetes_style_symlinks_are_followed_through_rotation_and_restarts(
    dev_server: DevServer, file_agent, ledger, tmp_path: Path
) -> None:
    containers, pods = tmp_path / "containers", tmp_path / "pods" / "shop_web-7f9_uid1" / "app"
    containers.mkdir()
    pods.mkdir(parents=True)
    link = containers / "web-7f9_shop_app-abc123.log"
    ledger.append(pods / "0.log", 100)
    link.symlink_to(pods / "0.log")
    agent = file_agent(include=[f"{containers}/*.log"])
    await agent.start()
    await ledger.all_received(what="through the link")

    with (pods / "0.log").open("ab") as runtime:  # kubelet rotates behind the link
        (pods / "0.log").rename(pods / "0.log.20261125-100000")
        ledger.append(pods / "0.log", 50, "after-rotation")
        runtime.write(ledger.lines(20, "late"))
    await ledger.all_received(what="rotation behind the link")

    ledger.append(pods / "1.log", 30, "restarted")  # the container restarts: 1.log
    staged = containers / ".staged"
    staged.symlink_to(pods / "1.log")
    staged.replace(link)

    assert await ledger.all_received(what="container restart") == 0
    assert await agent.stop() == 0


async def test_a_dangling_symlink_is_warned_about_once_and_not_spun_on(
    dev_server: DevServer, file_agent, ledger, tmp_path: Path
) -> None:
    containers, pods = tmp_path / "containers", tmp_path / "pods"
    containers.mkdir()
    pods.mkdir()
    ghost = containers / "gone.log"
    ghost.symlink_to(pods / "gone" / "0.log")
    ledger.append(pods / "live.log", 20)
    (containers / "live.log").symlink_to(pods / "live.log")
    agent = file_agent(include=[f"{containers}/*.log"], source={"scan_interval": "100ms"})
    await agent.start()
    await ledger.all_received(what="the live link")
    for n in range(10):  # ten scans over the dangling link: each finds one more new file
        ledger.append(containers / f"new-{n}.log", 1, "new")
        await ledger.all_received(what=f"new file {n}")

    cpu_before = agent.cpu_seconds()
    await asyncio.sleep(3.0)  # a measurement window: the CPU used over 3 idle seconds
    idle_cpu = agent.cpu_seconds() - cpu_before

    warnings = [e for e in agent.named("symlink_dangling") if e["path"] == str(ghost)]
    assert len(warnings) == 1, f"warned {len(warnings)} times"
    print(f"[dangling link] idle CPU {idle_cpu:.2f} s over 3 s")
    assert idle_cpu < 0.5, f"{idle_cpu:.2f} s of CPU in 3 idle seconds"

    (pods / "gone").mkdir()
    ledger.append(pods / "gone" / "0.log", 10, "resolved")
    assert await ledger.all_received(what="the link resolves") == 0
    assert await agent.stop() == 0


async def test_empty_files_are_read_once_they_get_content_also_across_a_restart(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    empties = [log_dir / f"e{n}.log" for n in range(4)]
    for path in empties:
        path.write_bytes(b"")
    agent = file_agent()
    await agent.start()
    await eventually(lambda: len(agent.named("file_opened")) == 4, within=10)

    for path in empties[:2]:
        ledger.append(path, 25, path.stem)
    await ledger.all_received(what="empty files filled")
    assert await agent.stop() == 0

    for path in empties:  # two were still empty at the stop, two had a checkpoint
        ledger.append(path, 15, path.stem + "-later")
    (log_dir / "e9.log").write_bytes(b"")
    await agent.start()
    ledger.append(log_dir / "e9.log", 5, "e9")

    assert await ledger.all_received(what="empty files after restart") == 0
    assert await agent.stop() == 0


async def test_files_sharing_their_first_kib_are_neither_merged_nor_skipped(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    header = orjson.dumps({"id": "header", "banner": "=" * 1200}) + b"\n"  # > 1 KiB, identical
    files = [log_dir / f"svc{n}.log" for n in range(4)]
    for n, path in enumerate(files):
        path.write_bytes(ledger.expect(header))
        ledger.append(path, 20 + n * 7, path.stem)  # different line counts, so offsets differ
    agent = file_agent()
    await agent.start()
    await ledger.all_received(what="shared header, live")
    assert await agent.stop() == 0

    for path in [files[0], files[2], files[3]]:
        ledger.append(path, 10, path.stem + "-b")
    files[0].rename(log_dir / "svc0-rotated.log")  # renamed: its checkpoint follows the inode
    kept_open = os.open(files[1], os.O_RDONLY)  # keeps the inode from being reused below
    try:
        files[1].unlink()  # deleted; a new file with the same banner takes its name
        files[1].write_bytes(ledger.expect(header) + ledger.lines(200, "newcomer"))
        await agent.start()
        assert await ledger.all_received(what="shared header after restart") == 0
    finally:
        os.close(kept_open)
    assert await agent.stop() == 0


async def test_thousands_of_files_stay_within_the_descriptor_cap_and_idle_ones_close(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    cap = 40
    agent = file_agent(source={"max_open_files": cap, "close_inactive": "1s"})
    await agent.start()
    await eventually(lambda: agent.named("agent_started"), within=10)
    await wait_until(settled(agent.open_fds, "the agent's start-up descriptors"), within=10)
    baseline = agent.open_fds()
    peak = baseline
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            with contextlib.suppress(FileNotFoundError):
                peak = max(peak, agent.open_fds())
            await asyncio.sleep(0.01)  # the sampling rate of the peak, not a wait

    sampler = asyncio.create_task(sample())
    try:
        files = [log_dir / f"pod-{n:04}.log" for n in range(2000)]
        for path in files:
            ledger.append(path, 3)
        await ledger.all_received(within=60, what="2000 files")
        await eventually(lambda: agent.open_fds() <= baseline + 6, within=10, what="closing")
        for path in files[::10]:  # closed for inactivity, then written again: reopened
            ledger.append(path, 2, "again")
        assert await ledger.all_received(within=30, what="2000 files, reopened") == 0
    finally:
        sampling = False
        await sampler
    print(f"[2000 files] descriptors: baseline={baseline} peak={peak} cap={cap}")
    assert peak <= baseline + cap + 8, f"{peak} descriptors open (baseline {baseline})"
    assert await agent.stop() == 0


NO_INOTIFY = [
    "unshare",
    "--user",
    "--map-root-user",
    "--",
    "sh",
    "-c",
    'echo 0 > /proc/sys/user/max_inotify_instances && exec "$@"',
    "no-inotify",
]
"""Runs a command in a user namespace whose inotify instance limit is 0: the limit is the
namespace's own, so nothing else on the machine loses its watches."""


async def test_the_scan_alone_ships_everything_when_inotify_instances_are_exhausted(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    probe = await asyncio.create_subprocess_exec(
        *NO_INOTIFY, "true", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, why = await probe.communicate()
    if probe.returncode != 0:
        pytest.skip(f"cannot create a user namespace to limit inotify in: {why!r}")
    ledger.append(log_dir / "app.log", 30)
    agent = file_agent(wrapper=NO_INOTIFY)
    await agent.start()
    await ledger.all_received(what="inotify exhausted, first file")
    ledger.append(log_dir / "app.log", 20, "appended")
    ledger.append(log_dir / "new.log", 20, "created")

    assert await ledger.all_received(what="inotify exhausted") == 0
    assert agent.named("watch_unavailable"), "the watcher really failed"
    assert await agent.stop() == 0


async def test_compressed_rotated_files_are_not_read_by_default(
    dev_server: DevServer, file_agent, ledger, log_dir: Path
) -> None:
    ledger.append(log_dir / "app.log", 30)
    ledger.append(log_dir / "app.log.1", 30, "plain-rotated")
    unread = ledger.lines(30, "compressed")
    for name, packed in [("app.log.2.gz", gzip.compress(unread)), ("app.log.3.zst", unread)]:
        (log_dir / name).write_bytes(packed)
    for ident in [orjson.loads(x)["id"] for x in unread.splitlines()]:
        del ledger.written[ident]
    agent = file_agent(include=[f"{log_dir}/app.log*"])

    assert await agent.run_once() == 0

    assert await ledger.all_received(what="compressed excluded") == 0
    assert not ledger.unexpected(), "lines of a compressed file were read"
    assert len(dev_server.received_lines(CONNECTION)) == 60
    assert not (agent.data_dir / "dead-letter").exists() or not any(
        (agent.data_dir / "dead-letter").iterdir()
    )
