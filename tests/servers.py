"""Real servers for tests: a ``redis-server`` on a free loopback port.

Without ``redis-server`` on PATH the tests that need it skip, with a reason;
under ``CI=true`` a missing server is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        message = f"{binary} is not installed (apt-get install redis-server)"
        if IN_CI:
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return path


class RedisServer:
    """``redis-server`` bound to 127.0.0.1 with its data in ``directory``.

    ``stop()`` saves the data set (``SHUTDOWN SAVE``) and ``start()`` loads
    it again, so a test can take Redis away and bring it back intact.
    """

    def __init__(self, directory: Path, *extra: str, password: str | None = None):
        self.binary = require("redis-server")
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.extra = [*extra, *(["--requirepass", password] if password else [])]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _auth(self) -> bytes:
        return f"AUTH {self.password}\r\n".encode() if self.password else b""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dbfilename",
                "dump.rdb",
                "--protected-mode",
                "yes",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(self._auth() + b"PING\r\n")
                    reply = b""
                    while reply.count(b"\r\n") < (2 if self.password else 1):  # +OK (AUTH), then +PONG
                        chunk = conn.recv(64)
                        if not chunk:
                            break
                        reply += chunk
                    if b"+PONG" in reply:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                conn.sendall(self._auth() + b"SHUTDOWN SAVE\r\n")
        except OSError:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class RedisCluster:
    """A real Redis Cluster of three masters (no replicas) on loopback ports,
    made with ``redis-cli --cluster create``."""

    def __init__(self, directory: Path, size: int = 3):
        self.cli = require("redis-cli")
        self.nodes = []
        for n in range(size):
            node_dir = directory / f"node{n}"
            node_dir.mkdir(parents=True, exist_ok=True)
            bus = free_port()
            self.nodes.append(
                RedisServer(
                    node_dir, "--cluster-enabled", "yes", "--cluster-port", str(bus), "--cluster-node-timeout", "5000"
                )
            )

    @property
    def url(self) -> str:
        """A storage URL naming one node (the client discovers the others)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        for node in self.nodes:
            while True:
                info = subprocess.run(
                    [self.cli, "-p", str(node.port), "cluster", "info"], capture_output=True, text=True, timeout=10
                ).stdout
                if "cluster_state:ok" in info:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Redis Cluster did not become ready: {info}")
                time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RabbitMQServer:
    """``rabbitmq-server`` (Debian's package) as a throwaway node on
    loopback ports, with its data, logs and Erlang cookie in ``directory``.

    Erlang's port mapper (``epmd``) is started for it on a free loopback
    port too, and stopped with it.
    """

    BINARY = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(self, directory: Path, config: str = ""):
        self.config = config
        if not os.path.exists(self.BINARY):
            message = "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
            if IN_CI:
                pytest.fail(f"CI=true: {message}", pytrace=False)
            pytest.skip(message)
        self.directory = directory
        self.port = free_port()
        self.epmd_port = free_port()
        self.dist_port = free_port()
        self.node = f"ct{self.port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        d = self.directory
        (d / "plugins").write_text("[].\n")
        return {
            **os.environ,
            "HOME": str(d),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "plugins"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
        }

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text("loopback_users = none\n" + self.config)
        env = self._env()
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        self.epmd = subprocess.Popen(
            [epmd, "-address", "127.0.0.1", "-port", str(self.epmd_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with open(self.directory / "server.log", "ab") as log:
            self.proc = subprocess.Popen([self.BINARY], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"AMQP\x00\x00\x09\x01")
                    if conn.recv(8):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log_text = (self.directory / "server.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"rabbitmq-server did not start on port {self.port}:\n{log_text}")
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in (self.proc, self.epmd):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.proc = self.epmd = None


def _postgres_binary(name: str) -> str:
    """``initdb``/``pg_ctl``: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        message = f"{name} is not installed (apt-get install postgresql)"
        if IN_CI:
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return str(found)


class PostgresServer:
    """A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) on a free
    loopback port, its data in a fresh temporary directory. PostgreSQL
    refuses to run as root: as root, the cluster runs as the ``postgres``
    user Debian's package creates."""

    user = "ct"

    def __init__(self) -> None:
        self.initdb = _postgres_binary("initdb")
        self.pg_ctl = _postgres_binary("pg_ctl")
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="ct-postgres-"))
        self.data = self.directory / "data"
        self.owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam("postgres")
            self.owner = (entry.pw_uid, entry.pw_gid)
            os.chown(self.directory, *self.owner)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.owner else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(self.initdb, "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start")

    def settings(self, name: str = "postgres") -> dict[str, object]:
        """A Django ``DATABASES`` entry for database ``name``."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": self.user,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }

    def stop(self) -> None:
        if self.data.exists():
            prefix = ["runuser", "-u", "postgres", "--"] if self.owner else []
            stop = [*prefix, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            subprocess.run(stop, capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)
