"""Run the local sandbox until Ctrl-C: ``python -m raidiam_sandbox [--dir .sandbox] ...``.

Prints the URLs and an ``export AIRFLOW_CONN_RAIDIAM_DEFAULT='...'`` line to paste into another shell.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from types import FrameType

from raidiam_sandbox.runner import CLIENTS, Sandbox, SandboxError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m raidiam_sandbox",
        description="Local Raidiam stand-in: oidc-provider authorisation server + Directory API emulator.",
    )
    parser.add_argument("--dir", default=".sandbox", help="state directory (PKI, configs, logs)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the emulator's generated data")
    parser.add_argument("--organisations", type=int, default=2000, help="organisations the emulator serves")
    parser.add_argument("--latency-ms", type=int, default=0, help="latency the emulator adds to each request")
    parser.add_argument("--token-ttl", type=int, default=300, help="access token lifetime in seconds")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="tls", help="client of the printed connection")
    parser.add_argument("--conn-id", default="raidiam_default", help="connection id of the printed export line")
    parser.add_argument("--pem-text", action="store_true", help="put PEM text, not paths, in the connection")
    parser.add_argument("--no-directory", action="store_true", help="start only the authorisation server")
    return parser


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Start the sandbox, print how to use it, and wait for Ctrl-C or SIGTERM."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    sandbox = Sandbox(
        args.dir,
        seed=args.seed,
        organisations=args.organisations,
        latency_ms=args.latency_ms,
        access_token_ttl=args.token_ttl,
        directory=not args.no_directory,
    )
    try:
        with sandbox:
            print(f"issuer            {sandbox.issuer}")
            print(f"mTLS base URL     {sandbox.mtls_base_url}")
            if not args.no_directory:
                print(f"Directory API     {sandbox.api_base_url}")
                print(f"participants      {sandbox.participants_url}")
            print(f"CA certificate    {sandbox.pki.ca_cert}")
            print(f"logs              {sandbox.state_dir}")
            value = sandbox.connection_uri_env(args.client, pem_text=args.pem_text)
            print(f"export AIRFLOW_CONN_{args.conn_id.upper()}={shlex.quote(value)}", flush=True)
            print("Sandbox running; Ctrl-C to stop.", file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
