"""``TritonService``: the servers of a job, which model each serves, and the local fallback server.

Configured as in CMSSW::

    process.TritonService = cms.Service("TritonService",
        verbose = cms.untracked.bool(False),
        servers = cms.VPSet(cms.PSet(name = cms.string("default"), address = cms.string("127.0.0.1"),
                                     port = cms.uint32(8001), protocol = cms.string("grpc"))),
        fallback = cms.PSet(enable = cms.bool(True), device = cms.string("auto"), protocol = cms.string("http")),
    )

SONIC clients register their models (:meth:`TritonService.addModel`) when constructed. In ``beginJob`` (after
every module is constructed, before any module's ``beginJob``) the service asks each server for its repository
index and maps each model to a server: the client's ``preferredServer`` when it serves the model, else the first
server that does. Models served nowhere are served by ONE local fallback server
(:class:`~framework.server.LocalTritonServer`) when ``fallback.enable``, started on a repository of those models
(found from the clients' ``modelConfigPath``); otherwise the job fails before its first event, naming the models
and the servers asked. The fallback is stopped in ``endJob``, also when the job fails.

Several servers per model (health-aware routing with failover): each model maps to every server that serves it
(the preferred one first). Each request goes to the best live server (:meth:`TritonService.pick`): fewest
requests outstanding from this job, then fewest recent failures, then the shortest queue time per request in the
server's statistics (read every 5 s in the background, where the server has statistics), then the configuration's
order. A request that
fails because its server is unreachable marks that server down (:meth:`TritonService.requestDone`) and is sent at
once to another server; a down server is probed again (given one request) after a back-off of 1 s, doubled after
each failed probe up to 30 s. When every server of a model is down and the fallback is enabled, the local fallback
server is started (once, for every model with a config path) and takes over. The per-server request and failure
counts are in :meth:`TritonService.summary` (printed with the job's TrigReport).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.module import Service
from ..core.params import Params, check_constraints
from ..core.registry import register
from ..exceptions import ConfigurationError, ServerError, did_you_mean
from ..monitoring import job as monitoring_job
from ..server.endpoints import check_port, check_protocol
from ..server.kind import MLSERVER, server_kind
from .parameters import FALLBACK_CONSTRAINTS, FALLBACK_PARAMETERS, SERVER_CONSTRAINTS, SERVER_PARAMETERS
from .stats import ClientStats, ServerStats, server_statistics
from .timing import ModelTiming, model_timing
from .transport import (
    ServerAddress,
    SslOptions,
    grpc_url,
    is_local_address,
    make_transport,
    message_of,
)

if TYPE_CHECKING:
    from ..server import LocalTritonServer
    from ..server.mlserver import LocalMLServer

log = logging.getLogger("framework.sonic")

FALLBACK_NAME = "fallback"
MLSERVER_FALLBACK_NAME = "fallback-mlserver"
"""The local fallback of MLServer models: those whose config path is a ``model-settings.json`` (DIALS packaging)
are served by a local MLServer (:class:`~framework.server.mlserver.LocalMLServer`) on their folders."""
DEFAULT_NAME = "default"
INDEX_TIMEOUT = 10.0
FIRST_BACKOFF_S = 1.0  # a server that failed is probed again after this, doubled after each failed probe ...
MAX_BACKOFF_S = 30.0  # ... up to this
FAILURE_HALF_LIFE_S = 30.0
QUEUE_REFRESH_S = 5.0  # how often the servers' queue times are read (statistics), with several servers

@dataclass
class _Server:
    name: str
    address: str
    isLocal: bool
    ssl: SslOptions | None
    protocol: str = "grpc"
    models: set[str] = field(default_factory=set)
    error: str = ""
    # health, shared by every client of the job (under the service's lock)
    outstanding: int = 0
    requests: int = 0
    failures: int = 0
    recent_failures: float = 0.0  # decays by half per FAILURE_HALF_LIFE_S
    recent_at: float = 0.0
    down_until: float = 0.0
    backoff: float = 0.0
    downs: int = 0
    queue_ms: float = 0.0  # mean queue time per request since the last reading (servers with statistics)
    queue_seen: dict = field(default_factory=dict)  # model -> ServerStats at the last reading

    def endpoint(self) -> ServerAddress:
        return ServerAddress(self.address, self.isLocal, self.ssl, self.protocol)

    def describe(self) -> str:
        return f"'{self.name}' ({self.address})" + (" over http" if self.protocol == "http" else "")


@dataclass
class _Model:
    name: str
    configPath: str
    preferredServer: str


@register("TritonService")
class TritonService(Service):
    """The job's Triton servers and the model -> server map (CMSSW's ``TritonService``)."""

    parameters = {
        "verbose": False,
        "servers": [SERVER_PARAMETERS],
        "fallback": FALLBACK_PARAMETERS,
    }

    def __init__(self, label: str, params: Params, globalCache: Any = None):
        super().__init__(label, params, globalCache)
        self.verbose = bool(params.verbose)
        self.fallbackParams = params.fallback
        check_constraints(FALLBACK_CONSTRAINTS, self.fallbackParams, "service TritonService: fallback")
        self._servers: dict[str, _Server] = {}
        for i, s in enumerate(params.servers):
            where = f"service TritonService: servers[{i}] ('{s['name']}')"
            if s["name"] in self._servers:
                raise ConfigurationError(f"{where}: two servers are named '{s['name']}'; give each its own name")
            if s["name"] in (FALLBACK_NAME, MLSERVER_FALLBACK_NAME):
                raise ConfigurationError(f"{where}: the name '{s['name']}' is reserved for the local fallback server")
            check_constraints(SERVER_CONSTRAINTS, s, where)
            port = int(s["port"])
            protocol = str(s["protocol"])
            if protocol == "http" and s["address"].startswith("unix:"):
                raise ConfigurationError(f"{where}: unix sockets need protocol 'grpc'")
            if not s["address"].startswith("unix:"):
                check_port(port, where)
            ssl = None
            if s["useSsl"]:
                for key in ("rootCertificates", "privateKey", "certificateChain"):
                    if s[key] and not os.path.isfile(s[key]):
                        raise ConfigurationError(f"{where}: {key} file {s[key]!r} does not exist")
                ssl = SslOptions(s["rootCertificates"] or None, s["privateKey"] or None, s["certificateChain"] or None)
            elif any(s[k] for k in ("rootCertificates", "privateKey", "certificateChain")):
                log.warning("%s: certificates given but useSsl is False; the connection is not encrypted", where)
            address = grpc_url(s["address"], None if s["address"].startswith("unix:") else port)
            self._servers[s["name"]] = _Server(s["name"], address, is_local_address(address), ssl, protocol)
        self._models: dict[str, _Model] = {}
        self._map: dict[str, str] = {}
        self._routes: dict[str, list[str]] = {}  # model -> every server serving it, the preferred first
        self._queue_read_at = 0.0
        self._queue_reading = False
        self._lock = threading.Lock()
        self._fallback_lock = threading.Lock()
        self._started = False
        self.fallbackServer: LocalTritonServer | None = None
        self.mlserverFallback: LocalMLServer | None = None
        self._fallback_repo: str | None = None
        self._baseline: dict[tuple[str, str], ServerStats] = {}  # (server, model) -> statistics at beginJob
        self._client_stats: dict[str, ClientStats] = {}
        self._label_models: dict[str, str] = {}
        self.timings: list[ModelTiming] = []  # per model, made by summary() at the end of the job
        self._clients_verbose = False

    # ------------------------------------------------------------------ clients
    def addModel(self, name: str, configPath: str = "", preferredServer: str = "", verbose: bool = False) -> None:
        """Declare that a client uses model *name* (called from the client's constructor, before beginJob)."""
        with self._lock:
            self._clients_verbose = self._clients_verbose or verbose
            entry = self._models.get(name)
            if entry is None:
                if self._started:
                    raise ServerError(
                        f"TritonService: model '{name}' was added after the job started; SONIC clients must be "
                        "made in the module constructor.")
                entry = self._models[name] = _Model(name, configPath, preferredServer)
            else:
                if configPath and entry.configPath and os.path.abspath(configPath) != os.path.abspath(entry.configPath):
                    log.warning("TritonService: model '%s' is used with two config paths, %s and %s; using the first",
                                name, entry.configPath, configPath)
                entry.configPath = entry.configPath or configPath
                entry.preferredServer = entry.preferredServer or preferredServer

    def reportStats(self, label: str, stats: ClientStats, model: str = "") -> None:
        """A client's statistics at its endJob (merged per module label; *model*: the client's model)."""
        with self._lock:
            self._client_stats.setdefault(label, ClientStats()).merge(stats)
            if model:
                self._label_models[label] = model

    @property
    def models(self) -> list[str]:
        return list(self._models)

    # ------------------------------------------------------------------ servers
    def serverFor(self, model: str) -> ServerAddress:
        """``(address, isLocal, ssl)`` of the server chosen for *model* (after beginJob)."""
        return self._servers[self.serverName(model)].endpoint()

    def serverName(self, model: str) -> str:
        """The name of the server chosen for *model* (``fallback`` for the local fallback server)."""
        if not self._started:
            raise ServerError("TritonService: servers are assigned in beginJob; ask for a model's server after it")
        try:
            return self._map[model]
        except KeyError:
            raise ServerError(
                f"TritonService: model '{model}' was not declared by any client.{did_you_mean(model, self._map)} "
                f"Declared: {', '.join(self._map) or 'none'}") from None

    def servers(self) -> dict[str, ServerAddress]:
        """Every known server by name (the fallback once started)."""
        return {name: s.endpoint() for name, s in self._servers.items()}

    def beginJob(self) -> None:
        if self._started:
            return
        try:
            self._assign()
        except BaseException:
            self._stop_fallback()
            raise
        self._started = True
        for srv in self._servers.values():
            if srv.name not in (FALLBACK_NAME, MLSERVER_FALLBACK_NAME):  # the fallback reports its own start
                monitoring_job.server_state(srv.name, srv.address, bool(srv.models))
        self._baseline = self._statistics()  # always: the SonicReport's server timing is over the job

    def _assign(self) -> None:
        if not self._models:
            self._started = True
            return
        for server in self._servers.values():
            self._query_index(server)
        fallback = self.fallbackParams.enable
        chosen: dict[str, str] = {}
        unserved: list[str] = []
        self._routes = {}
        for name, entry in self._models.items():
            serving = [s.name for s in self._servers.values() if name in s.models]
            self._routes[name] = sorted(serving, key=lambda s, pref=entry.preferredServer: s != pref)
            pref = entry.preferredServer
            if pref == FALLBACK_NAME and fallback:
                unserved.append(name)
                continue
            if pref and pref in serving:
                chosen[name] = pref
                continue
            if pref:
                if pref not in self._servers and pref != FALLBACK_NAME:
                    reason = (f"is not a configured server.{did_you_mean(pref, self._servers)} "
                              f"Servers: {', '.join(self._servers) or 'none'}")
                elif pref == FALLBACK_NAME:
                    reason = "is the fallback server, which is not enabled"
                elif self._servers[pref].error:
                    reason = f"cannot be reached ({self._servers[pref].error})"
                else:
                    reason = "does not serve it"
                instead = f"'{serving[0]}'" if serving else ("the fallback server" if fallback else "no server")
                log.warning("TritonService: model '%s': preferred server '%s' %s; using %s instead",
                            name, pref, reason, instead)
            if serving:
                chosen[name] = serving[0]
            else:
                unserved.append(name)
        if unserved and not fallback:
            raise ServerError(self._unserved_message(unserved))
        if unserved:
            self._start_fallback(unserved)
            for name in unserved:
                chosen[name] = self.fallbackName(name)
                self._routes[name] = [chosen[name]]
        self._map = chosen
        for name, server in chosen.items():
            log.info("TritonService: model '%s' -> server %s", name, self._servers[server].describe())

    def _query_index(self, server: _Server) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            transport = make_transport(server.endpoint())
        except Exception as exc:  # noqa: BLE001 - e.g. a bad address: the server serves nothing
            server.models, server.error = set(), message_of(exc)
            return
        try:
            try:
                server.models = transport.repository_index()
            except InferenceServerException as exc:
                # a KServe-V2-only server may have no (or another) repository index: ask per model
                try:
                    server.models = {m for m in self._models if transport.model_ready(m)}
                except Exception:  # noqa: BLE001 - the server is not reachable at all
                    raise exc from None
            server.error = ""
            log.debug("TritonService: server %s serves %s", server.describe(), sorted(server.models))
        except Exception as exc:  # noqa: BLE001
            server.models = set()
            server.error = message_of(exc)
            log.warning("TritonService: cannot get the repository index of server %s: %s", server.describe(),
                        server.error)
        finally:
            transport.close()

    def _unserved_message(self, models: list[str], extra: str = "") -> str:
        if self._servers:
            asked = "\n".join(
                f"    {s.describe()}: " + (f"unreachable: {s.error}" if s.error else
                                           f"serves {', '.join(sorted(s.models)) or 'no models'}")
                for s in self._servers.values())
        else:
            asked = "    (no servers configured)"
        names = ", ".join(f"'{m}'" for m in models)
        return (f"TritonService: model(s) {names} served by none of the servers asked:\n{asked}\n"
                f"  How to fix: start a server that serves them and give its address (address=HOST port=PORT, or "
                f"TritonService.servers), or enable the local fallback server (TritonService.fallback.enable = True, "
                f"e.g. with the enableSonicTriton modifier).{extra}")

    def fallbackName(self, model: str) -> str:
        """The local fallback that serves *model*: MLServer's for a ``model-settings.json``, else Triton's."""
        entry = self._models.get(model)
        kind = server_kind(entry.configPath) if entry is not None else None
        return MLSERVER_FALLBACK_NAME if kind == MLSERVER else FALLBACK_NAME

    def _start_mlserver_fallback(self, models: list[str]) -> None:
        from ..server.mlserver import LocalMLServer

        p = self.fallbackParams
        server = LocalMLServer([os.path.dirname(os.path.abspath(self._models[m].configPath)) for m in models],
                               models=models, wait=float(p.wait), verbose=bool(p.verbose), keep_logs=bool(p.keepLogs))
        self.mlserverFallback = server
        log.info("TritonService: starting a local MLServer for %s", ", ".join(models))
        server.start()
        address = server.http_address if p.protocol == "http" else server.grpc_address
        self._servers[MLSERVER_FALLBACK_NAME] = _Server(MLSERVER_FALLBACK_NAME, address, True, None, p.protocol,
                                                        set(server.models))
        monitoring_job.server_state(MLSERVER_FALLBACK_NAME, address, True)

    def _start_fallback(self, models: list[str]) -> None:
        from ..server import LocalTritonServer

        mlserver = [m for m in models if self.fallbackName(m) == MLSERVER_FALLBACK_NAME]
        if mlserver:
            self._start_mlserver_fallback(mlserver)
            models = [m for m in models if m not in mlserver]
            if not models:
                return
        no_path = [m for m in models if not self._models[m].configPath]
        if no_path:
            raise ServerError(self._unserved_message(
                no_path, extra=f"\n  The fallback server cannot serve {', '.join(no_path)}: it finds a model from its "
                "client's Client.modelConfigPath (<repository>/<model>/config.pbtxt), which is empty."))
        sources = {m: os.path.dirname(os.path.abspath(self._models[m].configPath)) for m in models}
        parents = {os.path.dirname(src) for src in sources.values()}
        if len(parents) == 1 and all(os.path.basename(src) == m for m, src in sources.items()):
            # served from their own repository (nothing to clean up if the job is killed)
            repos = sorted(parents)
        else:  # a model whose directory is named otherwise: a repository of links under the model names
            repo = tempfile.mkdtemp(prefix="cmsfw-sonic-fallback-")
            self._fallback_repo = repo
            for m, source in sources.items():
                os.symlink(source, os.path.join(repo, m), target_is_directory=True)
            repos = [repo]
        p = self.fallbackParams
        server = LocalTritonServer(repos, device=p.device, grpc_port=int(p.port), instances=int(p.instances),
                                   threads=int(p.threads), queue_delay_us=int(p.queueDelay), models=models,
                                   wait=float(p.wait), verbose=bool(p.verbose), keep_logs=bool(p.keepLogs))
        self.fallbackServer = server
        log.info("TritonService: starting the local fallback server for %s", ", ".join(models))
        server.start()
        log.info("TritonService: the fallback server's Prometheus metrics at %s", server.metrics_url)
        protocol = p.protocol
        address = server.http_address if protocol == "http" else server.grpc_address
        self._servers[FALLBACK_NAME] = _Server(FALLBACK_NAME, address, True, None, protocol, set(server.models))
        monitoring_job.server_state(FALLBACK_NAME, address, True)

    def _stop_fallback(self) -> None:
        server, self.fallbackServer = self.fallbackServer, None
        mlserver, self.mlserverFallback = self.mlserverFallback, None
        try:
            if mlserver is not None:
                self._servers.pop(MLSERVER_FALLBACK_NAME, None)
                mlserver.stop()
        finally:
            self._stop_triton_fallback(server)

    def _stop_triton_fallback(self, server: LocalTritonServer | None) -> None:
        try:
            if server is not None:
                server.stop()
        finally:
            if self._fallback_repo is not None:
                shutil.rmtree(self._fallback_repo, ignore_errors=True)
                self._fallback_repo = None
            self._servers.pop(FALLBACK_NAME, None)

    # ------------------------------------------------------------------ routing
    def route(self, model: str) -> list[str]:
        """Every server that serves *model* (names; the preferred or first one first)."""
        self.serverName(model)  # the checks and their messages
        return list(self._routes.get(model, [self._map[model]]))

    def endpoint(self, server: str) -> ServerAddress:
        """Where server *server* is."""
        return self._servers[server].endpoint()

    def pick(self, model: str, exclude: Iterable[str] = ()) -> str | None:
        """The server for the next request of *model*: the best live one not in *exclude* (fewest outstanding
        requests, then fewest recent failures, then configuration order); a down server whose back-off has
        passed counts as live (it is probed). When none is left and the fallback is enabled, the fallback is
        started (once) and chosen. None when no server can take the request."""
        route = self.route(model)
        skip = set(exclude)
        now = time.monotonic()
        if len(route) > 1 and now - self._queue_read_at > QUEUE_REFRESH_S:
            self._refresh_queue_times(now)
        with self._lock:
            live = [self._servers[n] for n in route if n not in skip and n in self._servers
                    and self._servers[n].down_until <= now]
            if live:
                best = min(live, key=lambda srv: (srv.outstanding, round(self._decayed(srv, now)), srv.queue_ms,
                                                  route.index(srv.name)))
                best.outstanding += 1
                best.requests += 1
                return best.name
        fallback = self.fallbackName(model)
        if not self.fallbackParams.enable or fallback in skip:
            return None
        self._take_over(model)
        with self._lock:
            server = self._servers.get(fallback)
            if server is None:
                return None
            server.outstanding += 1
            server.requests += 1
            return server.name

    def generation(self, server: str) -> int:
        """How often *server* was seen going down in this job: state a client keeps on a server (its shared memory
        registration) from an earlier generation is gone."""
        with self._lock:
            srv = self._servers.get(server)
            return srv.downs if srv is not None else 0

    def canServe(self, model: str, exclude: Iterable[str] = ()) -> bool:
        """Whether a server not in *exclude* may take a request of *model* now (a live one, or the fallback)."""
        skip = set(exclude)
        now = time.monotonic()
        with self._lock:
            if any(n not in skip and n in self._servers and self._servers[n].down_until <= now
                   for n in self.route(model)):
                return True
        return bool(self.fallbackParams.enable) and self.fallbackName(model) not in skip

    def requestDone(self, server: str, error: BaseException | None = None, *, server_down: bool = False) -> None:
        """A request to *server* ended; with ``server_down`` the server is marked down (it did not answer)."""
        now = time.monotonic()
        with self._lock:
            srv = self._servers.get(server)
            if srv is None:
                return
            srv.outstanding = max(0, srv.outstanding - 1)
            if error is None:
                if srv.backoff:
                    log.info("TritonService: server %s answers again", srv.describe())
                    monitoring_job.server_state(srv.name, srv.address, True)
                srv.backoff = 0.0
                return
            srv.failures += 1
            srv.recent_failures = self._decayed(srv, now) + 1.0
            srv.recent_at = now
            if server_down and srv.down_until <= now:
                srv.backoff = min(MAX_BACKOFF_S, srv.backoff * 2) if srv.backoff else FIRST_BACKOFF_S
                srv.down_until = now + srv.backoff
                srv.downs += 1
                monitoring_job.server_state(srv.name, srv.address, False)
                others = [n for n, o in self._servers.items() if n != server and o.down_until <= now]
                log.warning("TritonService: server %s is down (%s); probing it again in %.0f s; %s", srv.describe(),
                            message_of(error), srv.backoff,
                            f"requests go to {', '.join(others)}" if others else
                            ("the local fallback server takes over" if self.fallbackParams.enable else
                             "no other server is live"))

    def _refresh_queue_times(self, now: float) -> None:
        """Read, in a background thread, each live server's queue time per request since the last reading
        (Triton's statistics; a server without them keeps 0)."""
        with self._lock:
            if self._queue_reading or now - self._queue_read_at <= QUEUE_REFRESH_S:
                return
            self._queue_reading = True
            servers = [srv for srv in self._servers.values() if srv.down_until <= now and srv.models]

        def read() -> None:
            try:
                for srv in servers:
                    transport = None
                    try:
                        transport = make_transport(srv.endpoint())
                        queue = requests = 0.0
                        for model in {m for m, r in self._routes.items() if srv.name in r and len(r) > 1}:
                            stats = server_statistics(transport.statistics(model))
                            delta = stats - srv.queue_seen.get(model, ServerStats())
                            srv.queue_seen[model] = stats
                            queue, requests = queue + delta.queue, requests + delta.success
                        srv.queue_ms = 1e3 * queue / requests if requests else srv.queue_ms
                    except Exception as exc:  # noqa: BLE001 - statistics are a hint (V2 servers have none)
                        log.debug("no statistics from %s: %s", srv.describe(), exc)
                    finally:
                        if transport is not None:
                            transport.close()
            finally:
                with self._lock:
                    self._queue_read_at = time.monotonic()
                    self._queue_reading = False

        threading.Thread(target=read, name="sonic-queue-times", daemon=True).start()

    @staticmethod
    def _decayed(srv: _Server, now: float) -> float:
        if not srv.recent_failures:
            return 0.0
        return srv.recent_failures * 0.5 ** ((now - srv.recent_at) / FAILURE_HALF_LIFE_S)

    def _take_over(self, model: str) -> None:
        """Every listed server of *model* is down: start the fallback (once) for every model with a config
        path and add it to their routes."""
        with self._fallback_lock:
            fallback = self.fallbackName(model)
            if fallback in self._servers:
                if fallback not in self._routes.get(model, []):
                    self._routes.setdefault(model, []).append(fallback)
                return
            models = [m for m, e in self._models.items() if e.configPath and self.fallbackName(m) == fallback]
            if model not in models:
                return
            log.warning("TritonService: every server of model '%s' is down; starting the local fallback server", model)
            self._start_fallback(models)
            for m in models:
                if fallback not in self._routes.setdefault(m, []):
                    self._routes[m].append(fallback)

    def summary(self) -> list[str]:
        """Per server: requests and failures of this job (and how often it went down); per model: the round trip
        and the server's share of it (:mod:`framework.sonic.timing`, kept in :attr:`timings`)."""
        lines = []
        with self._lock:
            for srv in self._servers.values():
                if srv.requests or srv.failures:
                    down = f", went down {srv.downs} time{'s' if srv.downs != 1 else ''}" if srv.downs else ""
                    lines.append(f"SonicReport: server {srv.describe()}: {srv.requests} requests, "
                                 f"{srv.failures} failed{down}")
        if self._started:
            self.timings = self._timings()
            lines.extend(t.summary() for t in self.timings)
        return lines

    def _timings(self) -> list[ModelTiming]:
        per_model: dict[str, tuple[ClientStats, list[str]]] = {}
        for label, stats in self.clientStats().items():
            model = self._label_models.get(label, label)
            merged, labels = per_model.setdefault(model, (ClientStats(), []))
            merged.merge(stats)
            labels.append(label)
        server_stats = self.statistics(per_model)
        out = []
        for model, (stats, labels) in per_model.items():
            if not stats.round_trips.count:
                continue
            servers = [n for n in self.route(model) if n in self._servers and self._servers[n].requests]
            fallback = self.fallbackName(model)
            if fallback in self._servers and self._servers[fallback].requests and fallback not in servers:
                servers.append(fallback)
            out.append(model_timing(model, servers, labels, stats, server_stats.get(model)))
        return out

    # ------------------------------------------------------------------ statistics
    def statistics(self, models: Iterable[str] | None = None) -> dict[str, ServerStats]:
        """Server-side statistics of the job's models since beginJob, summed over the servers that serve each
        (those that can be read now; a server that restarted counts from its restart)."""
        now = self._statistics(models)
        out: dict[str, ServerStats] = {}
        for (server, model), stats in now.items():
            base = self._baseline.get((server, model))
            if base is not None and stats.success >= base.success:
                stats = stats - base
            out[model] = out[model] + stats if model in out else stats
        return out

    def _statistics(self, models: Iterable[str] | None = None) -> dict[tuple[str, str], ServerStats]:
        """(server, model) -> the statistics now, for every live server of each model (the fallback included)."""
        out: dict[tuple[str, str], ServerStats] = {}
        by_server: dict[str, list[str]] = {}
        now = time.monotonic()
        for m in models if models is not None else self._map:
            if m not in self._map:
                continue
            names = [*self.route(m), self.fallbackName(m)]
            for name in dict.fromkeys(names):
                srv = self._servers.get(name)
                if srv is not None and srv.down_until <= now:
                    by_server.setdefault(name, []).append(m)
        for name, ms in by_server.items():
            server = self._servers[name]
            try:
                transport = make_transport(server.endpoint())
            except Exception as exc:  # noqa: BLE001 - statistics are informative only
                log.debug("no statistics from %s: %s", server.describe(), exc)
                continue
            try:
                for m in ms:
                    try:
                        out[(name, m)] = server_statistics(transport.statistics(m))
                    except Exception as exc:  # noqa: BLE001 - statistics are informative only (V2 servers have none)
                        log.debug("no statistics for model '%s' from %s: %s", m, server.describe(), exc)
            finally:
                transport.close()
        return out

    def clientStats(self) -> dict[str, ClientStats]:
        """Client-side statistics merged per module label (as reported by the clients at their endJob)."""
        with self._lock:
            return dict(self._client_stats)

    def endJob(self) -> None:
        try:
            if self._started and self._map and (self.verbose or self._clients_verbose):
                for label, stats in self.clientStats().items():
                    log.info("SONIC client '%s': %s", label, stats.summary())
                for model, stats in self.statistics().items():
                    log.info("Triton server %s, model '%s': %s", self._servers[self._map[model]].describe()
                             if self._map.get(model) in self._servers else "?", model, stats.summary())
        finally:
            self._stop_fallback()
            self._started = False


def apply_server_option(service_decl: Any, address: str | list[str], port: int | list[int],
                        protocol: str = "grpc") -> None:
    """Make the servers ``default`` (``default2``, ``default3``... for several) of a ``cms.Service("TritonService")``
    declaration point at *address*:*port* with *protocol* (the ``address=`` / ``port=`` / ``protocol=`` command-line
    options; lists of equal length give one server each); they are put first, so that models they serve go to
    them."""
    from ..config.types import PSet, VPSet, plain

    addresses = [address] if isinstance(address, str) else list(address)
    ports = [int(port)] * len(addresses) if isinstance(port, int) else [int(p) for p in port]
    if len(addresses) != len(ports):
        raise ConfigurationError(f"{len(addresses)} addresses but {len(ports)} ports: give one port per address")
    check_protocol(protocol, f"the option protocol={protocol}")
    servers = []
    for i, (addr, p) in enumerate(zip(addresses, ports)):
        if not addr:
            raise ConfigurationError("address= must not be empty")
        if not addr.startswith("unix:"):
            check_port(p, f"the option port={p}")
        servers.append(PSet(name=DEFAULT_NAME if i == 0 else f"{DEFAULT_NAME}{i + 1}", address=str(addr), port=p,
                            protocol=protocol, useSsl=False, rootCertificates="", privateKey="", certificateChain=""))
    names = {plain(s.name) for s in servers}
    existing = list(service_decl.servers) if "servers" in service_decl else []
    kept = [s for s in existing if not (isinstance(s, PSet) and "name" in s and plain(s.name) in names)]
    old = [s for s in existing if not any(s is k for k in kept) and plain(s.name) == DEFAULT_NAME]
    if old:  # keep the SSL settings of a declared default server
        for server in servers:
            for key in ("useSsl", "rootCertificates", "privateKey", "certificateChain"):
                if key in old[0]:
                    setattr(server, key, getattr(old[0], key))
    service_decl.servers = VPSet(*servers, *kept)


def apply_protocol_option(service_decl: Any, protocol: str) -> None:
    """The ``protocol=`` option without ``address=``: the clients talk to the local fallback server in it."""
    from ..config.types import PSet

    check_protocol(protocol, f"the option protocol={protocol}")
    if "fallback" not in service_decl:
        service_decl.fallback = PSet(protocol=protocol)
    else:
        service_decl.fallback.protocol = protocol


__all__ = ["FALLBACK_NAME", "ServerStats", "TritonService", "apply_protocol_option", "apply_server_option",
           "server_statistics"]
