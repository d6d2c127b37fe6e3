"""``python -m framework serve``: run the local Triton server on ``data/models`` until Ctrl-C (like ``cmsTriton``);
``--server mlserver``: a real MLServer on the MLServer models there (folders with ``model-settings.json``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ..exceptions import FrameworkError

DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "data" / "models"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m framework serve",
        description="Start the bundled Triton server (nvidia-pytriton) on model repositories in the standard "
                    "layout (ONNX models run with ONNXRuntime in the Python backend), bound to 127.0.0.1, "
                    "until Ctrl-C or SIGTERM.")
    parser.add_argument("--server", choices=("triton", "mlserver"), default="triton",
                        help="triton: the bundled tritonserver (default); mlserver: MLServer on the folders with "
                             "a model-settings.json (DIALS packaging), KServe V2 only")
    parser.add_argument("--models", metavar="DIR", action="append", type=Path, default=None,
                        help=f"model repository (repeatable; default: {DEFAULT_MODELS})")
    parser.add_argument("--model", metavar="NAME", action="append", dest="names", default=None,
                        help="serve only this model (repeatable; default: every model of the repositories)")
    parser.add_argument("--grpc-port", type=int, default=-1, help="gRPC port (default: a free one)")
    parser.add_argument("--http-port", type=int, default=-1, help="HTTP port (default: a free one)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: GPU when nvidia-smi lists one (default)")
    parser.add_argument("--instances", type=int, default=0,
                        help="model instances per ONNX model (default 0: chosen from the cores)")
    parser.add_argument("--threads", type=int, default=0,
                        help="ONNXRuntime intra-op threads per instance (default 0: chosen from the cores)")
    parser.add_argument("--queue-delay-us", type=int, default=-1, metavar="US",
                        help="dynamic batching max_queue_delay_microseconds of ONNX models whose config "
                             "leaves it 0 (default -1: chosen from the cores; 0: none)")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for readiness (default 120)")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the server log in this directory")
    parser.add_argument("--verbose", action="store_true", help="verbose server log and debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the server until interrupted; 0 on a clean stop, non-zero when it fails to start or dies."""
    from .launcher import LocalTritonServer

    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
    repositories = args.models or [DEFAULT_MODELS]

    stop = threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in handled:
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    name = "MLServer" if args.server == "mlserver" else "Triton server"
    server = None
    try:
        try:
            if args.server == "mlserver":
                from .mlserver import LocalMLServer

                server = LocalMLServer(repositories, models=args.names, grpc_port=args.grpc_port,
                                       http_port=args.http_port, wait=args.wait, verbose=args.verbose,
                                       log_dir=args.log_dir)
            else:
                server = LocalTritonServer(repositories, device=args.device, grpc_port=args.grpc_port,
                                           http_port=args.http_port, instances=args.instances, threads=args.threads,
                                           queue_delay_us=args.queue_delay_us, models=args.names, wait=args.wait,
                                           verbose=args.verbose, log_dir=args.log_dir)
            server.start()
        except FrameworkError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return getattr(exc, "exit_code", 1)
        host, port = server.grpc_address.rsplit(":", 1)
        if args.server == "mlserver":
            print(f"Local MLServer ready in {server.start_seconds:.1f} s (pid {server.pid})\n"
                  f"  gRPC:   {server.grpc_address}\n"
                  f"  HTTP:   {server.http_address}\n"
                  f"  models: {', '.join(server.models)} (KServe V2: no model config, shared memory or statistics)\n"
                  f"  log:    {server.log_path}\n"
                  f"Use it with: python -m framework run CONFIG address={host} port={port}\n"
                  "Press Ctrl-C to stop.", flush=True)
        else:
            print(f"Local Triton server ready in {server.start_seconds:.1f} s (pid {server.pid})\n"
                  f"  gRPC:   {server.grpc_address}\n"
                  f"  HTTP:   {server.http_address}\n"
                  f"  metrics: {server.metrics_url}\n"
                  f"  device: {server.device}, {server.instances} instance(s) x {server.threads} thread(s) per "
                  f"model, queue delay {server.queue_delay_us} us\n"
                  f"  models: {', '.join(server.models)}\n"
                  f"  repositories: {', '.join(str(r) for r in server.repositories)}\n"
                  f"  log:    {server.log_path}\n"
                  f"Use it with: python -m framework run CONFIG address={host} port={port}\n"
                  "Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            if not server.is_running():
                print(f"error: the {name} died; tail of its log:\n{server.log_tail(30)}",
                      file=sys.stderr, flush=True)
                return 1
        print(f"Stopping the {name}...", flush=True)
        return 0
    finally:
        if server is not None:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
